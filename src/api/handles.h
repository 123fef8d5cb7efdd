// The structs behind the opaque handles of the C API, and the one function
// that turns C++ exceptions into status codes + ktq_error.
#pragma once

#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "engines/engine.h"
#include "ktq/ktq.h"
#include "reading/model.h"
#include "runtime/error.h"
#include "quant/gptq.h"
#include "text/bpe_tokenizer.h"
#include "text/calibration_data.h"
#include "writers/writer.h"

struct ktq_error {
    ktq_status status;
    std::string message;
};

struct ktq_model {
    std::unique_ptr<ktq::Model> impl;
    std::string path;
};

struct ktq_writer {
    const ktq_model *model = nullptr;
    ktq_format format = KTQ_FORMAT_HF_BF16;
    std::string out_dir;
    std::unique_ptr<ktq::Writer> impl;
    bool finished = false;
    std::unique_ptr<ktq::Engine> engine;  // kept between layers (see run_layer)
    ktq_engine engine_kind = KTQ_ENGINE_DEFAULT;
    ktq_device engine_device = KTQ_DEVICE_CPU;
    bool ct_mse_observer = false;  // compressed-tensors with KTQ_CT_OBSERVER_MSE (engines that cannot take it refuse)
};

struct ktq_tokenizer {
    std::unique_ptr<ktq::BpeTokenizer> impl;
};

struct ktq_gptq {
    ktq::gptq::Hessian hessian;
};

namespace ktq {

inline void set_error(ktq_error **err, ktq_status status, const std::string &message) noexcept {
    if (!err) return;
    *err = nullptr;
    try {
        *err = new ktq_error{status, message};
    } catch (...) {
    }
}

// Runs `body`, mapping every exception to a status (and *err when asked).
template <typename Body>
ktq_status guarded(ktq_error **err, Body &&body) noexcept {
    if (err) *err = nullptr;
    try {
        body();
        return KTQ_OK;
    } catch (const Error &e) {
        set_error(err, e.status(), e.what());
        return e.status();
    } catch (const std::bad_alloc &) {
        set_error(err, KTQ_ERR_NO_MEMORY, "out of memory");
        return KTQ_ERR_NO_MEMORY;
    } catch (const std::exception &e) {
        set_error(err, KTQ_ERR_INTERNAL, std::string("internal error: ") + e.what());
        return KTQ_ERR_INTERNAL;
    } catch (...) {
        set_error(err, KTQ_ERR_INTERNAL, "internal error: unknown exception");
        return KTQ_ERR_INTERNAL;
    }
}

inline void require(bool ok, const char *what) {
    if (!ok) fail(KTQ_ERR_INVALID_ARGUMENT, what);
}

// Option structs: `version` must be one this library knows.
inline void check_version(unsigned version, unsigned current, const char *what) {
    if (version == 0 || version > current)
        fail(KTQ_ERR_VERSION, std::string(what) + ": version " + std::to_string(version) +
                                  " not supported by this libktq (knows up to " + std::to_string(current) +
                                  "); call its *_init() first");
}

// The body of every *_init(): zero the struct and stamp its version. Only
// the current version can be initialised by this library.
template <typename T>
ktq_status init_versioned(T *s, unsigned version, unsigned current) noexcept {
    if (!s) return KTQ_ERR_INVALID_ARGUMENT;
    if (version != current) return KTQ_ERR_VERSION;
    std::memset(s, 0, sizeof *s);
    s->version = version;
    return KTQ_OK;
}

// For option structs that grew fields version by version (`bytes_of(v)`:
// the size of version v): a *_init() zeroes only the caller's version's
// bytes, and reads overlay the caller's struct, as far as its version goes,
// on the current defaults. A caller built against an older header passes a
// smaller struct.
template <typename T, typename BytesOf>
ktq_status init_versioned_prefix(T *s, unsigned version, unsigned current, BytesOf bytes_of) noexcept {
    if (!s) return KTQ_ERR_INVALID_ARGUMENT;
    if (version == 0 || version > current) return KTQ_ERR_VERSION;
    std::memset(s, 0, bytes_of(version));
    s->version = version;
    return KTQ_OK;
}
template <typename T, typename BytesOf>
void overlay_versioned(T &defaults, const T *opts, unsigned current, const char *what, BytesOf bytes_of) {
    if (!opts) return;
    check_version(opts->version, current, what);
    std::memcpy(&defaults, opts, bytes_of(opts->version));
    defaults.version = current;
}

}  // namespace ktq
