// C API: version, status strings, errors, dtypes.
#include "api/handles.h"
#include "reading/dtype.h"

extern "C" {

unsigned ktq_version_number(void) { return KTQ_VERSION_NUMBER; }
const char *ktq_version(void) { return KTQ_VERSION_STRING; }

const char *ktq_status_str(int status) {
    switch (status) {
    case KTQ_OK: return "ok";
    case KTQ_ERR_INVALID_ARGUMENT: return "invalid argument";
    case KTQ_ERR_IO: return "input/output error";
    case KTQ_ERR_FORMAT: return "malformed input";
    case KTQ_ERR_UNSUPPORTED: return "unsupported";
    case KTQ_ERR_NOT_FOUND: return "not found";
    case KTQ_ERR_NO_MEMORY: return "out of memory";
    case KTQ_ERR_CANCELLED: return "cancelled";
    case KTQ_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case KTQ_ERR_VERSION: return "unsupported struct version";
    case KTQ_ERR_NO_SPACE: return "no space left on device";
    case KTQ_ERR_STATE: return "invalid state";
    case KTQ_ERR_INTERNAL: return "internal error";
    default: return "unknown status";
    }
}

int ktq_is_error(int status) { return status < 0; }

ktq_status ktq_error_status(const ktq_error *err) { return err ? err->status : KTQ_OK; }
const char *ktq_error_message(const ktq_error *err) { return err ? err->message.c_str() : ""; }
void ktq_error_free(ktq_error *err) { delete err; }

const char *ktq_dtype_name(ktq_dtype dtype) { return ktq::dtype_name(dtype); }
size_t ktq_dtype_size(ktq_dtype dtype) { return ktq::dtype_size(dtype); }

}  // extern "C"
