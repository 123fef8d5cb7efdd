// What every CUDA source of libktq needs: status checks that turn CUDA,
// cuBLAS and cuSOLVER errors into ktq errors (no device / out of memory /
// internal, with what was being done), and device memory owned by one
// object. Included from .cu files only.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <string>

#include "runtime/error.h"

namespace ktq::cuda {

inline void check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        cudaGetLastError();  // clear the error so later calls start clean
        fail(e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ? KTQ_ERR_UNSUPPORTED
             : e == cudaErrorMemoryAllocation                          ? KTQ_ERR_NO_MEMORY
                                                                       : KTQ_ERR_INTERNAL,
             std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
    }
}
inline void check(cublasStatus_t e, const char *what) {
    if (e != CUBLAS_STATUS_SUCCESS)
        fail(e == CUBLAS_STATUS_ALLOC_FAILED ? KTQ_ERR_NO_MEMORY : KTQ_ERR_INTERNAL,
             std::string("cuBLAS: ") + what + " failed with status " + std::to_string(static_cast<int>(e)));
}
inline void check(cusolverStatus_t e, const char *what) {
    if (e != CUSOLVER_STATUS_SUCCESS)
        fail(e == CUSOLVER_STATUS_ALLOC_FAILED ? KTQ_ERR_NO_MEMORY : KTQ_ERR_INTERNAL,
             std::string("cuSOLVER: ") + what + " failed with status " + std::to_string(static_cast<int>(e)));
}

// n elements of T in device memory, freed on every path.
template <class T>
class Buffer {
public:
    Buffer() = default;
    Buffer(size_t n, const char *what) { resize(n, what); }
    ~Buffer() { cudaFree(p_); }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    // Drops the contents.
    void resize(size_t n, const char *what) {
        cudaFree(p_);
        p_ = nullptr;
        n_ = n;
        if (n) check(cudaMalloc(&p_, n * sizeof(T)), what);
    }
    T *get() const { return p_; }
    size_t size() const { return n_; }

private:
    T *p_ = nullptr;
    size_t n_ = 0;
};

}  // namespace ktq::cuda
