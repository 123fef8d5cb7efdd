/*
 * ktq/common.h - version, status codes, errors, dtypes and the export macro.
 *
 * Everything in ktq's C ABI follows these conventions (after libgit2):
 *   - every fallible call returns a ktq_status (KTQ_OK == 0, errors < 0);
 *   - out-parameters come first; what comes back through `**out` is owned by
 *     the caller and released with the matching *_free(), and *_free(NULL) is
 *     a no-op;
 *   - every fallible call takes a trailing `ktq_error **err`. Pass NULL if you
 *     only want the status; otherwise on failure *err receives a new error
 *     object (status + message naming the file and tensor involved) that you
 *     release with ktq_error_free(). The error belongs to that one call, so it
 *     is safe with goroutines and JNI threads that hop between OS threads;
 *     there is no thread-local "last error";
 *   - option structs start with `unsigned version` and are filled with their
 *     *_init() function before use, so fields can be added without breaking
 *     the ABI;
 *   - callbacks end with `void *payload`; a non-zero return cancels the
 *     operation, which then returns KTQ_ERR_CANCELLED and leaves no output
 *     that looks complete.
 */
#ifndef KTQ_COMMON_H
#define KTQ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(KTQ_BUILDING_LIBRARY)
#    define KTQ_API __declspec(dllexport)
#  else
#    define KTQ_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define KTQ_API __attribute__((visibility("default")))
#else
#  define KTQ_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version --------------------------------------------------------- */

#define KTQ_VERSION_MAJOR 0
#define KTQ_VERSION_MINOR 1
#define KTQ_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH, comparable with ktq_version_number(). */
#define KTQ_VERSION_NUMBER \
    (KTQ_VERSION_MAJOR * 10000 + KTQ_VERSION_MINOR * 100 + KTQ_VERSION_PATCH)
#define KTQ_VERSION_STRING "0.1.0"

/* The version of the library actually loaded at run time. */
KTQ_API unsigned ktq_version_number(void);
KTQ_API const char *ktq_version(void);

/* ---- Status codes ---------------------------------------------------- */

typedef enum ktq_status {
    KTQ_OK = 0,
    KTQ_ERR_INVALID_ARGUMENT = -1, /* NULL where not allowed, bad enum, ... */
    KTQ_ERR_IO = -2,               /* open/read/write/rename failed */
    KTQ_ERR_FORMAT = -3,           /* malformed input file */
    KTQ_ERR_UNSUPPORTED = -4,      /* valid input ktq cannot handle */
    KTQ_ERR_NOT_FOUND = -5,        /* no such tensor, layer, expert */
    KTQ_ERR_NO_MEMORY = -6,
    KTQ_ERR_CANCELLED = -7,        /* a callback returned non-zero */
    KTQ_ERR_BUFFER_TOO_SMALL = -8,
    KTQ_ERR_VERSION = -9,          /* option struct version not supported */
    KTQ_ERR_NO_SPACE = -10,        /* disk full (ENOSPC, EDQUOT, EFBIG) */
    KTQ_ERR_STATE = -11,           /* call not valid in the handle's state */
    KTQ_ERR_INTERNAL = -12
} ktq_status;

/* Where an engine or the forward pass computes. */
typedef enum ktq_device {
    KTQ_DEVICE_CPU = 0,
    KTQ_DEVICE_CUDA = 1 /* a CUDA device (device 0 unless a device list says otherwise; CUDA_VISIBLE_DEVICES applies) */
} ktq_device;

/* A static, never-NULL English description of a status code. */
KTQ_API const char *ktq_status_str(int status);
/* Non-zero when status is an error (like ZSTD_isError). */
KTQ_API int ktq_is_error(int status);

/* ---- Errors (per call) ----------------------------------------------- */

typedef struct ktq_error ktq_error;

KTQ_API ktq_status ktq_error_status(const ktq_error *err);
/* The message; valid until ktq_error_free(err). Never NULL for non-NULL err. */
KTQ_API const char *ktq_error_message(const ktq_error *err);
KTQ_API void ktq_error_free(ktq_error *err);

/* ---- Element types --------------------------------------------------- */

typedef enum ktq_dtype {
    KTQ_DTYPE_UNKNOWN = 0,
    KTQ_DTYPE_F32 = 1,
    KTQ_DTYPE_F16 = 2,
    KTQ_DTYPE_BF16 = 3,
    KTQ_DTYPE_F8_E4M3 = 4,
    KTQ_DTYPE_F8_E5M2 = 5,
    KTQ_DTYPE_F64 = 6,
    KTQ_DTYPE_I8 = 7,
    KTQ_DTYPE_U8 = 8,
    KTQ_DTYPE_I16 = 9,
    KTQ_DTYPE_I32 = 10,
    KTQ_DTYPE_I64 = 11,
    KTQ_DTYPE_BOOL = 12
} ktq_dtype;

/* The safetensors name ("BF16", "F8_E4M3", ...); "UNKNOWN" if not valid. */
KTQ_API const char *ktq_dtype_name(ktq_dtype dtype);
/* Bytes per element, 0 for KTQ_DTYPE_UNKNOWN. */
KTQ_API size_t ktq_dtype_size(ktq_dtype dtype);

/* ---- Progress and cancellation --------------------------------------- */

typedef struct ktq_progress {
    unsigned version;       /* KTQ_PROGRESS_VERSION */
    int layer;              /* layer being worked on; -1 for non-layer tensors */
    int layers_total;       /* number of decoder layers of the model */
    const char *tensor;     /* tensor just finished (valid during the call) */
    uint64_t bytes_done;    /* input bytes finished so far in this operation */
    uint64_t bytes_total;   /* input bytes this operation will read */
} ktq_progress;
#define KTQ_PROGRESS_VERSION 1

/* Called from the thread that runs the operation, never concurrently for
 * one operation. Return non-zero to cancel. */
typedef int (*ktq_progress_cb)(const ktq_progress *progress, void *payload);

#ifdef __cplusplus
}
#endif

#endif /* KTQ_COMMON_H */
