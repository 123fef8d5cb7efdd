#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <map>

#include "cuda/cuda_matmul.h"
#include "forward/attention.h"
#include "cuda/cuda_support.h"
#include "cuda/device_ops.h"
#include "runtime/error.h"

namespace ktq {

namespace {

using ktq::cuda::Buffer;
using ktq::cuda::check;

// Floats from the first to one past the last value a token-major operand holds.
size_t extent(int64_t tokens, int64_t row, int64_t heads, int64_t head, int64_t len) {
    return static_cast<size_t>((tokens - 1) * row + (heads - 1) * head + len);
}

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

    void forget(const float *w) override {
        auto it = weights_.find(w);
        if (it == weights_.end()) return;
        cached_ -= it->second.size() * 4;
        weights_.erase(it);
    }

    void abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, bool keep_weight) override {
        if (m == 0 || n == 0) return;
        check(cudaSetDevice(device_), "cudaSetDevice");
        const float *wd = device_weight(w, static_cast<size_t>(n * k), keep_weight, 0);
        upload(a_, a, static_cast<size_t>(m * k), "activations");
        grow(c_, static_cast<size_t>(m * n), "results");
        product(c_.get(), a_.get(), wd, m, k, n);
        check(cudaMemcpy(c, c_.get(), static_cast<size_t>(m * n) * 4, cudaMemcpyDeviceToHost), "copy of results");
    }

    bool swiglu(float *y, const float *x, const float *gate, const float *up, const float *down, int64_t rows,
                int64_t in, int64_t inter, int64_t out) override {
        if (rows == 0) return true;
        check(cudaSetDevice(device_), "cudaSetDevice");
        const size_t hidden = static_cast<size_t>(rows * inter);
        const float *gd = device_weight(gate, static_cast<size_t>(inter * in), true, 0);
        const float *ud = device_weight(up, static_cast<size_t>(inter * in), true, 1);
        upload(a_, x, static_cast<size_t>(rows * in), "activations");
        grow(g_, hidden, "MLP gate");
        grow(u_, hidden, "MLP up");
        product(g_.get(), a_.get(), gd, rows, in, inter);
        product(u_.get(), a_.get(), ud, rows, in, inter);
        cuda::silu_mul(g_.get(), u_.get(), hidden);
        if (!down) {
            check(cudaMemcpy(y, g_.get(), hidden * 4, cudaMemcpyDeviceToHost), "copy of the MLP's hidden values");
            return true;
        }
        const float *dd = device_weight(down, static_cast<size_t>(out * inter), true, 2);
        grow(c_, static_cast<size_t>(rows * out), "results");
        product(c_.get(), g_.get(), dd, rows, inter, out);
        check(cudaMemcpy(y, c_.get(), static_cast<size_t>(rows * out) * 4, cudaMemcpyDeviceToHost), "copy of results");
        return true;
    }

    bool causal_attention(float *out, const float *q, const float *k, const float *v,
                          const AttentionShape &a) override {
        if (a.seqs == 0 || a.seq_len == 0 || a.heads == 0) return true;
        check(cudaSetDevice(device_), "cudaSetDevice");
        const int64_t n = a.tokens(), kvh = a.kv_heads();
        const size_t nq = extent(n, a.q_row, a.heads, a.q_head, a.dq), nk = extent(n, a.k_row, kvh, a.k_head, a.dq),
                     nv = extent(n, a.v_row, kvh, a.v_head, a.dv), no = extent(n, a.out_row, a.heads, a.out_head, a.dv);
        Buffer<float> dq(nq, "attention queries"), dk(nk, "attention keys"), dv(nv, "attention values"),
            dout(no, "attention output");
        check(cudaMemcpy(dq.get(), q, nq * 4, cudaMemcpyHostToDevice), "copy of queries");
        check(cudaMemcpy(dk.get(), k, nk * 4, cudaMemcpyHostToDevice), "copy of keys");
        check(cudaMemcpy(dv.get(), v, nv * 4, cudaMemcpyHostToDevice), "copy of values");
        // out may hold other values between the heads (a caller's wider rows): keep them.
        check(cudaMemcpy(dout.get(), out, no * 4, cudaMemcpyHostToDevice), "copy of the output rows");
        Buffer<float> scores;  // freed after the call: outside the weight cache's accounting
        cuda::causal_attention(blas_, scores, dout.get(), dq.get(), dk.get(), dv.get(), a);
        check(cudaMemcpy(out, dout.get(), no * 4, cudaMemcpyDeviceToHost), "copy of the attention output");
        return true;
    }

private:
    // The device copy of weight w: kept (keep, while the cache has room) or in scratch slot `slot` (a product
    // may need up to three weights at once).
    const float *device_weight(const float *w, size_t count, bool keep, int slot) {
        auto it = keep ? weights_.find(w) : weights_.end();
        if (it != weights_.end() && it->second.size() == count) return it->second.get();
        Buffer<float> *buf = &scratch_w_[slot];
        if (keep && cached_ + count * 4 <= max_cached_) {
            buf = &weights_[w];
            cached_ += count * 4;
        }
        if (buf->size() < count) buf->resize(count, "weights");
        check(cudaMemcpy(buf->get(), w, count * 4, cudaMemcpyHostToDevice), "copy of weights");
        return buf->get();
    }
    static void grow(Buffer<float> &b, size_t count, const char *what) {
        if (b.size() < count) b.resize(count, what);
    }
    static void upload(Buffer<float> &b, const float *host, size_t count, const char *what) {
        grow(b, count, what);
        check(cudaMemcpy(b.get(), host, count * 4, cudaMemcpyHostToDevice), what);
    }
    void product(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n) {
        cuda::product_abt(blas_, c, a, w, m, k, n);
    }

    int device_;
    cublasHandle_t blas_ = nullptr;
    std::map<const float *, Buffer<float>> weights_;
    size_t cached_ = 0, max_cached_ = 0;
    Buffer<float> scratch_w_[3], a_, c_, g_, u_;
};

}  // namespace

std::unique_ptr<MatmulBackend> make_cuda_matmul(int device, size_t cache_bytes) {
    return std::make_unique<CudaMatmul>(device, cache_bytes);
}

}  // namespace ktq
