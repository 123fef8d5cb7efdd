#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>

#include "cuda/cuda_matmul.h"
#include "cuda/cuda_support.h"
#include "runtime/error.h"

namespace ktq {

namespace {

using ktq::cuda::Buffer;
using ktq::cuda::check;

class CudaMatmul : public MatmulBackend {
public:
    CudaMatmul(int device, size_t cache_bytes) : device_(device) {
        check(cudaSetDevice(device), "cudaSetDevice");
        if (cache_bytes == 0) {
            size_t free_b = 0, total_b = 0;
            check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
            cache_bytes = free_b / 2;
        }
        max_cached_ = cache_bytes;
        check(cublasCreate(&blas_), "cublasCreate");
        cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH);
    }
    ~CudaMatmul() override { cublasDestroy(blas_); }

    void forget() override {
        weights_.clear();
        cached_ = 0;
    }

    void abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, bool keep_weight) override {
        if (m == 0 || n == 0) return;
        check(cudaSetDevice(device_), "cudaSetDevice");
        const size_t wcount = static_cast<size_t>(n * k);
        const float *wd = nullptr;
        auto it = keep_weight ? weights_.find(w) : weights_.end();
        if (it != weights_.end() && it->second.size() == wcount) {
            wd = it->second.get();
        } else {
            Buffer<float> *slot = &scratch_w_;
            if (keep_weight && cached_ + wcount * 4 <= max_cached_) {
                slot = &weights_[w];
                cached_ += wcount * 4;
            }
            if (slot->size() < wcount) slot->resize(wcount, "weights");
            check(cudaMemcpy(slot->get(), w, wcount * 4, cudaMemcpyHostToDevice), "copy of weights");
            wd = slot->get();
        }
        if (a_.size() < static_cast<size_t>(m * k)) a_.resize(static_cast<size_t>(m * k), "activations");
        if (c_.size() < static_cast<size_t>(m * n)) c_.resize(static_cast<size_t>(m * n), "results");
        check(cudaMemcpy(a_.get(), a, static_cast<size_t>(m * k) * 4, cudaMemcpyHostToDevice), "copy of activations");
        const float one = 1.0f, zero = 0.0f;
        // Row-major C [m, n] = A [m, k] W^T, W [n, k]; column-major: C^T = W A^T.
        check(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                          static_cast<int>(k), &one, wd, static_cast<int>(k), a_.get(), static_cast<int>(k), &zero,
                          c_.get(), static_cast<int>(n)),
              "product");
        check(cudaMemcpy(c, c_.get(), static_cast<size_t>(m * n) * 4, cudaMemcpyDeviceToHost), "copy of results");
    }

private:
    int device_;
    cublasHandle_t blas_ = nullptr;
    std::map<const float *, Buffer<float>> weights_;
    size_t cached_ = 0, max_cached_ = 0;
    Buffer<float> scratch_w_, a_, c_;
};

}  // namespace

std::unique_ptr<MatmulBackend> make_cuda_matmul(int device, size_t cache_bytes) {
    return std::make_unique<CudaMatmul>(device, cache_bytes);
}

}  // namespace ktq
