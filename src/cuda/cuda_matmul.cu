#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <map>

#include "cuda/cuda_matmul.h"
#include "forward/attention.h"
#include "cuda/cuda_support.h"
#include "runtime/error.h"

namespace ktq {

namespace {

using ktq::cuda::Buffer;
using ktq::cuda::check;

// The causal softmax of one row of scores per block: row t of a [L, L] matrix of q.k products (unscaled),
// rows of all heads of a chunk one after another. In place: the probabilities for s <= t, 0 after. The same
// formula as the CPU's attend(): exp(scale x - max) / sum.
__global__ void causal_softmax_rows(float *scores, int64_t seq_len, float scale) {
    const int64_t row = blockIdx.x;
    const int64_t t = row % seq_len;
    float *r = scores + row * seq_len;
    __shared__ float part[256];
    float mx = -INFINITY;
    for (int64_t s = threadIdx.x; s <= t; s += blockDim.x) mx = fmaxf(mx, r[s] * scale);
    part[threadIdx.x] = mx;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) part[threadIdx.x] = fmaxf(part[threadIdx.x], part[threadIdx.x + w]);
        __syncthreads();
    }
    mx = part[0];
    __syncthreads();
    float sum = 0;
    for (int64_t s = threadIdx.x; s <= t; s += blockDim.x) {
        const float e = expf(r[s] * scale - mx);
        r[s] = e;
        sum += e;
    }
    part[threadIdx.x] = sum;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    sum = part[0];
    for (int64_t s = threadIdx.x; s < seq_len; s += blockDim.x) r[s] = s <= t ? r[s] / sum : 0.0f;
}

// g = silu(g) * u, as the CPU's forward computes it.
__global__ void silu_mul(float *g, const float *u, size_t n) {
    const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    if (i < n) {
        const float x = g[i];
        g[i] = __fmul_rn(__fdiv_rn(x, __fadd_rn(1.0f, expf(-x))), u[i]);
    }
}

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
        silu_mul<<<static_cast<unsigned>((hidden + 255) / 256), 256>>>(g_.get(), u_.get(), hidden);
        check(cudaGetLastError(), "MLP silu");
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

    // Per window: S = Q K^T for a chunk of heads (one cuBLAS product per head), the causal softmax of every
    // row, O = P V. Scores for at most kScoreBytes at a time.
    bool causal_attention(float *out, const float *q, const float *k, const float *v,
                          const AttentionShape &a) override {
        if (a.seqs == 0 || a.seq_len == 0 || a.heads == 0) return true;
        check(cudaSetDevice(device_), "cudaSetDevice");
        const int64_t n = a.tokens(), L = a.seq_len, kvh = a.kv_heads();
        const size_t nq = extent(n, a.q_row, a.heads, a.q_head, a.dq), nk = extent(n, a.k_row, kvh, a.k_head, a.dq),
                     nv = extent(n, a.v_row, kvh, a.v_head, a.dv), no = extent(n, a.out_row, a.heads, a.out_head, a.dv);
        constexpr size_t kScoreBytes = size_t(512) << 20;
        const int64_t chunk = std::max<int64_t>(
            1, std::min<int64_t>(a.heads, static_cast<int64_t>(kScoreBytes / (static_cast<size_t>(L * L) * 4))));
        Buffer<float> dq(nq, "attention queries"), dk(nk, "attention keys"), dv(nv, "attention values"),
            dout(no, "attention output"), scores(static_cast<size_t>(chunk * L * L), "attention scores");
        check(cudaMemcpy(dq.get(), q, nq * 4, cudaMemcpyHostToDevice), "copy of queries");
        check(cudaMemcpy(dk.get(), k, nk * 4, cudaMemcpyHostToDevice), "copy of keys");
        check(cudaMemcpy(dv.get(), v, nv * 4, cudaMemcpyHostToDevice), "copy of values");
        // out may hold other values between the heads (a caller's wider rows): keep them.
        check(cudaMemcpy(dout.get(), out, no * 4, cudaMemcpyHostToDevice), "copy of the output rows");
        const float one = 1.0f, zero = 0.0f;
        const int iL = static_cast<int>(L);
        for (int64_t sq = 0; sq < a.seqs; ++sq) {
            const int64_t base = sq * L;
            for (int64_t h0 = 0; h0 < a.heads; h0 += chunk) {
                const int64_t hn = std::min(chunk, a.heads - h0);
                for (int64_t j = 0; j < hn; ++j) {
                    const int64_t h = h0 + j, g = h / a.group;
                    // Column-major: S^T [L_s, L_t] = K_cm^T Q_cm, K_cm = K^T [dq, L] (ld k_row), Q_cm likewise.
                    check(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, iL, iL, static_cast<int>(a.dq), &one,
                                      dk.get() + base * a.k_row + g * a.k_head, static_cast<int>(a.k_row),
                                      dq.get() + base * a.q_row + h * a.q_head, static_cast<int>(a.q_row), &zero,
                                      scores.get() + j * L * L, iL),
                          "attention scores");
                }
                causal_softmax_rows<<<static_cast<unsigned>(hn * L), 256>>>(scores.get(), L, a.scale);
                check(cudaGetLastError(), "attention softmax");
                for (int64_t j = 0; j < hn; ++j) {
                    const int64_t h = h0 + j, g = h / a.group;
                    // O_cm [dv, L_t] = V_cm [dv, L_s] P_cm [L_s, L_t]; P_cm is row-major P read as its transpose.
                    check(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(a.dv), iL, iL, &one,
                                      dv.get() + base * a.v_row + g * a.v_head, static_cast<int>(a.v_row),
                                      scores.get() + j * L * L, iL, &zero,
                                      dout.get() + base * a.out_row + h * a.out_head, static_cast<int>(a.out_row)),
                          "attention output");
                }
            }
        }
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
    // Row-major C [m, n] = A [m, k] W^T, W [n, k]; column-major: C^T = W A^T.
    void product(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n) {
        const float one = 1.0f, zero = 0.0f;
        check(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                          static_cast<int>(k), &one, w, static_cast<int>(k), a, static_cast<int>(k), &zero, c,
                          static_cast<int>(n)),
              "product");
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
