#include "runtime/error.h"

#include <cerrno>
#include <cstring>

namespace ktq {

void fail_errno(int errnum, const std::string &what) {
    ktq_status status = KTQ_ERR_IO;
    if (errnum == ENOSPC || errnum == EDQUOT || errnum == EFBIG) status = KTQ_ERR_NO_SPACE;
    if (errnum == ENOMEM) status = KTQ_ERR_NO_MEMORY;
    throw Error(status, what + ": " + std::strerror(errnum));
}

}  // namespace ktq
