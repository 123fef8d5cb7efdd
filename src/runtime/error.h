// ktq::Error - the one exception type used inside libktq. It carries the
// public status code and a message that names the file and tensor involved.
// The C API layer (src/api) catches it and turns it into a ktq_error; no
// exception ever crosses the ABI.
#pragma once

#include <stdexcept>
#include <string>

#include "ktq/common.h"

namespace ktq {

class Error : public std::runtime_error {
public:
    Error(ktq_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}
    ktq_status status() const { return status_; }

private:
    ktq_status status_;
};

[[noreturn]] inline void fail(ktq_status status, const std::string &message) {
    throw Error(status, message);
}

// Maps an errno value from a failed system call to a status and message.
[[noreturn]] void fail_errno(int errnum, const std::string &what);

}  // namespace ktq
