#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "cuda/device_ops.h"
#include "forward/attention.h"

namespace ktq::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(size_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

void launched(const char *what) { check(cudaGetLastError(), what); }

// Sum of `v` over the block (blockDim.x == kThreads); every thread gets it.
template <class T>
__device__ T block_sum(T v) {
    __shared__ T part[kThreads];
    part[threadIdx.x] = v;
    __syncthreads();
    for (int w = kThreads / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    const T total = part[0];
    __syncthreads();
    return total;
}

__device__ float block_max(float v) {
    __shared__ float part[kThreads];
    part[threadIdx.x] = v;
    __syncthreads();
    for (int w = kThreads / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) part[threadIdx.x] = fmaxf(part[threadIdx.x], part[threadIdx.x + w]);
        __syncthreads();
    }
    const float total = part[0];
    __syncthreads();
    return total;
}

// The causal softmax of one row of scores per block: row t of a [L, L] matrix of q.k products (unscaled), the
// rows of several matrices one after another. In place: the probabilities for s <= t, 0 after. The CPU's
// formula: exp(scale x - max) / sum.
__global__ void causal_softmax_rows(float *scores, int64_t seq_len, float scale) {
    const int64_t row = blockIdx.x;
    const int64_t t = row % seq_len;
    float *r = scores + row * seq_len;
    float mx = -INFINITY;
    for (int64_t s = threadIdx.x; s <= t; s += blockDim.x) mx = fmaxf(mx, r[s] * scale);
    mx = block_max(mx);
    float sum = 0;
    for (int64_t s = threadIdx.x; s <= t; s += blockDim.x) {
        const float e = expf(r[s] * scale - mx);
        r[s] = e;
        sum += e;
    }
    sum = block_sum(sum);
    for (int64_t s = threadIdx.x; s < seq_len; s += blockDim.x) r[s] = s <= t ? r[s] / sum : 0.0f;
}

__global__ void silu_mul_kernel(float *g, const float *u, size_t n) {
    const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    if (i < n) {
        const float x = g[i];
        g[i] = __fmul_rn(__fdiv_rn(x, __fadd_rn(1.0f, expf(-x))), u[i]);
    }
}

__global__ void add_bias_kernel(float *y, const float *b, int64_t rows, int64_t n) {
    const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    if (i < static_cast<size_t>(rows * n)) y[i] = __fadd_rn(y[i], b[i % n]);
}

__global__ void add_into_kernel(float *y, const float *x, size_t n) {
    const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    if (i < n) y[i] = __fadd_rn(y[i], x[i]);
}

__global__ void rms_norm_kernel(float *y, int64_t y_row, const float *x, int64_t x_row, const float *weight,
                                int64_t n, float eps) {
    const float *xr = x + blockIdx.x * x_row;
    float *yr = y + blockIdx.x * y_row;
    double ss = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += static_cast<double>(xr[i]) * xr[i];
    ss = block_sum(ss);
    const float inv = __fdiv_rn(1.0f, sqrtf(__fadd_rn(static_cast<float>(ss / static_cast<double>(n)), eps)));
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = __fmul_rn(__fmul_rn(xr[i], inv), weight[i]);
}

// One block per (token, head), one thread per rotated pair: every thread reads its pair before any writes.
__global__ void rope_kernel(float *x, int64_t row, int64_t heads, int64_t head, int64_t offset, const float *cos,
                            const float *sin, int64_t half, int64_t seq_len, bool interleaved) {
    const int64_t t = blockIdx.x / heads, h = blockIdx.x % heads, i = threadIdx.x;
    float *v = x + t * row + h * head + offset;
    const float c = cos[(t % seq_len) * half + i], s = sin[(t % seq_len) * half + i];
    const float a = interleaved ? v[2 * i] : v[i], b = interleaved ? v[2 * i + 1] : v[i + half];
    __syncthreads();
    v[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    v[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

__global__ void mla_keys_kernel(float *key, const float *kv, const float *ckv, int64_t tokens, int64_t heads,
                                int64_t nope, int64_t rope_dim, int64_t v_dim, int64_t ckv_row, int64_t rope_offset) {
    const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    const int64_t dqk = nope + rope_dim;
    if (i >= static_cast<size_t>(tokens * heads * dqk)) return;
    const int64_t d = static_cast<int64_t>(i) % dqk, th = static_cast<int64_t>(i) / dqk, t = th / heads;
    key[i] = d < nope ? kv[th * (nope + v_dim) + d] : ckv[t * ckv_row + rope_offset + (d - nope)];
}

__global__ void gather_rows_kernel(float *dst, const float *src, const int32_t *rows, int64_t m, int64_t n) {
    const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    if (i < static_cast<size_t>(m * n)) dst[i] = src[static_cast<int64_t>(rows[i / n]) * n + static_cast<int64_t>(i % n)];
}

__global__ void scatter_add_rows_kernel(float *out, const float *y, const int32_t *rows, const float *weights,
                                        int64_t m, int64_t n) {
    const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    if (i >= static_cast<size_t>(m * n)) return;
    float *o = out + static_cast<int64_t>(rows[i / n]) * n + static_cast<int64_t>(i % n);
    *o = __fadd_rn(*o, __fmul_rn(weights[i / n], y[i]));
}

__global__ void add_gated_kernel(float *out, const float *y, const float *gate, int64_t rows, int64_t n) {
    const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    if (i >= static_cast<size_t>(rows * n)) return;
    const float s = gate ? __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-gate[i / n]))) : 1.0f;
    out[i] = __fadd_rn(out[i], __fmul_rn(s, y[i]));
}

// One block per token: the chunk's max and sum of exp(logit - max) in double, merged into the running pair.
__global__ void logsumexp_kernel(const float *logits, int64_t vc, int64_t v0, const int32_t *next, float *run_max,
                                 double *run_sum, float *target) {
    const int64_t t = blockIdx.x;
    const float *l = logits + t * vc;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < vc; j += blockDim.x) mx = fmaxf(mx, l[j]);
    mx = fmaxf(run_max[t], block_max(mx));
    double s = 0;
    for (int64_t j = threadIdx.x; j < vc; j += blockDim.x) s += exp(static_cast<double>(l[j]) - mx);
    s = block_sum(s);
    if (threadIdx.x == 0) {
        run_sum[t] = run_sum[t] * exp(static_cast<double>(run_max[t]) - mx) + s;
        run_max[t] = mx;
        const int32_t nt = next[t];
        if (nt >= v0 && nt < v0 + vc) target[t] = l[nt - v0];
    }
}

}  // namespace

void product_abt(cublasHandle_t blas, float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n) {
    if (m == 0 || n == 0) return;
    // Column-major: C^T [n, m] = W A^T.
    const float one = 1.0f, zero = 0.0f;
    check(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                      &one, w, static_cast<int>(k), a, static_cast<int>(k), &zero, c, static_cast<int>(n)),
          "product");
}

void add_bias(float *y, const float *b, int64_t rows, int64_t n) {
    if (rows * n == 0) return;
    add_bias_kernel<<<blocks_for(static_cast<size_t>(rows * n)), kThreads>>>(y, b, rows, n);
    launched("bias");
}

void silu_mul(float *g, const float *u, size_t n) {
    if (n == 0) return;
    silu_mul_kernel<<<blocks_for(n), kThreads>>>(g, u, n);
    launched("silu");
}

void add_into(float *y, const float *x, size_t n) {
    if (n == 0) return;
    add_into_kernel<<<blocks_for(n), kThreads>>>(y, x, n);
    launched("residual add");
}

void rms_norm(float *y, int64_t y_row, const float *x, int64_t x_row, const float *weight, int64_t rows, int64_t n,
              float eps) {
    if (rows == 0) return;
    rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads>>>(y, y_row, x, x_row, weight, n, eps);
    launched("RMSNorm");
}

void rope(float *x, int64_t tokens, int64_t row, int64_t heads, int64_t head, int64_t offset, const float *cos,
          const float *sin, int64_t half, int64_t seq_len, bool interleaved) {
    if (tokens * heads == 0 || half == 0) return;
    if (half > 1024) fail(KTQ_ERR_UNSUPPORTED, "RoPE on the GPU: more than 2048 rotary dimensions per head");
    if (offset + 2 * half > (heads > 1 ? head : row))
        fail(KTQ_ERR_INTERNAL, "RoPE on the GPU: the rotary dimensions run past their head");
    rope_kernel<<<static_cast<unsigned>(tokens * heads), static_cast<unsigned>(half)>>>(x, row, heads, head, offset, cos,
                                                                                       sin, half, seq_len, interleaved);
    launched("RoPE");
}

void mla_keys(float *key, const float *kv, const float *ckv, int64_t tokens, int64_t heads, int64_t nope,
              int64_t rope_dim, int64_t v_dim, int64_t ckv_row, int64_t rope_offset) {
    const size_t n = static_cast<size_t>(tokens * heads * (nope + rope_dim));
    if (n == 0) return;
    mla_keys_kernel<<<blocks_for(n), kThreads>>>(key, kv, ckv, tokens, heads, nope, rope_dim, v_dim, ckv_row,
                                                 rope_offset);
    launched("MLA keys");
}

void gather_rows(float *dst, const float *src, const int32_t *rows, int64_t m, int64_t n) {
    if (m * n == 0) return;
    gather_rows_kernel<<<blocks_for(static_cast<size_t>(m * n)), kThreads>>>(dst, src, rows, m, n);
    launched("expert rows");
}

void scatter_add_rows(float *out, const float *y, const int32_t *rows, const float *weights, int64_t m, int64_t n) {
    if (m * n == 0) return;
    scatter_add_rows_kernel<<<blocks_for(static_cast<size_t>(m * n)), kThreads>>>(out, y, rows, weights, m, n);
    launched("expert outputs");
}

void add_gated(float *out, const float *y, const float *gate, int64_t rows, int64_t n) {
    if (rows * n == 0) return;
    add_gated_kernel<<<blocks_for(static_cast<size_t>(rows * n)), kThreads>>>(out, y, gate, rows, n);
    launched("shared expert");
}

namespace {
int64_t score_windows(int64_t windows, int64_t seq_len, size_t score_bytes) {
    return std::max<int64_t>(
        1, std::min<int64_t>(windows, static_cast<int64_t>(score_bytes / (static_cast<size_t>(seq_len * seq_len) * 4))));
}
}  // namespace

size_t attention_score_floats(int64_t windows, int64_t seq_len, size_t score_bytes) {
    return static_cast<size_t>(score_windows(windows, seq_len, score_bytes) * seq_len * seq_len);
}

void causal_attention(cublasHandle_t blas, Buffer<float> &scores, float *out, const float *q, const float *k,
                      const float *v, const AttentionShape &a, size_t score_bytes) {
    if (a.seqs == 0 || a.seq_len == 0 || a.heads == 0) return;
    const int64_t L = a.seq_len;
    // Per head, all windows of a chunk in one strided-batched product: S_w^T = K_w^T Q_w, then the softmax
    // of every row, then O_w = V_w P_w (column-major views of the row-major operands).
    const int64_t chunk = score_windows(a.seqs, L, score_bytes);
    if (scores.size() < static_cast<size_t>(chunk * L * L)) scores.resize(static_cast<size_t>(chunk * L * L), "attention scores");
    const float one = 1.0f, zero = 0.0f;
    const int iL = static_cast<int>(L);
    for (int64_t w0 = 0; w0 < a.seqs; w0 += chunk) {
        const int64_t wn = std::min(chunk, a.seqs - w0), base = w0 * L;
        for (int64_t h = 0; h < a.heads; ++h) {
            const int64_t g = h / a.group;
            check(cublasSgemmStridedBatched(blas, CUBLAS_OP_T, CUBLAS_OP_N, iL, iL, static_cast<int>(a.dq), &one,
                                            k + base * a.k_row + g * a.k_head, static_cast<int>(a.k_row), L * a.k_row,
                                            q + base * a.q_row + h * a.q_head, static_cast<int>(a.q_row), L * a.q_row,
                                            &zero, scores.get(), iL, L * L, static_cast<int>(wn)),
                  "attention scores");
            causal_softmax_rows<<<static_cast<unsigned>(wn * L), kThreads>>>(scores.get(), L, a.scale);
            launched("attention softmax");
            check(cublasSgemmStridedBatched(blas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(a.dv), iL, iL, &one,
                                            v + base * a.v_row + g * a.v_head, static_cast<int>(a.v_row), L * a.v_row,
                                            scores.get(), iL, L * L, &zero,
                                            out + base * a.out_row + h * a.out_head, static_cast<int>(a.out_row),
                                            L * a.out_row, static_cast<int>(wn)),
                  "attention output");
        }
    }
}

void logsumexp_update(const float *logits, int64_t tokens, int64_t vc, int64_t v0, const int32_t *next,
                      float *run_max, double *run_sum, float *target) {
    if (tokens == 0) return;
    logsumexp_kernel<<<static_cast<unsigned>(tokens), kThreads>>>(logits, vc, v0, next, run_max, run_sum, target);
    launched("log-sum-exp");
}

}  // namespace ktq::cuda
