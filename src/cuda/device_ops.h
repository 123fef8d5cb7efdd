// The forward pass's operations on device memory, shared by the two GPU
// forwards: cuda_matmul (products on the device, everything else on the host)
// and cuda_forward (whole decoder layers on the device). Every pointer is a
// device pointer; every call is queued on the default stream in order. The
// arithmetic follows the CPU forward's (forward/decoder_layer.cpp), in
// float32 except where the CPU accumulates in double. Included from .cu files
// only.
#pragma once

#include <cublas_v2.h>

#include <cstddef>
#include <cstdint>

#include "cuda/cuda_support.h"

namespace ktq {
struct AttentionShape;
}

namespace ktq::cuda {

// Row-major C [m, n] = A [m, k] W^T, W [n, k] (a Linear's weight), cuBLAS float32 without TF32.
void product_abt(cublasHandle_t blas, float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n);
// y[r, j] += b[j] for r < rows, j < n.
void add_bias(float *y, const float *b, int64_t rows, int64_t n);
// g = silu(g) * u, elementwise over n values.
void silu_mul(float *g, const float *u, size_t n);
// y += x, elementwise over n values.
void add_into(float *y, const float *x, size_t n);
// y[r, :n] = x[r, :n] * rsqrt(mean(x[r, :n]^2) + eps) * weight, rows `y_row` / `x_row` floats apart (in place
// when y == x and y_row == x_row); the sum of squares in double, as on the CPU.
void rms_norm(float *y, int64_t y_row, const float *x, int64_t x_row, const float *weight, int64_t rows, int64_t n,
              float eps);
// RoPE on `heads` heads of every token: the `2 * half` values at x + t * row + h * head + offset, position
// t % seq_len, with cos/sin tables [seq_len, half]. interleaved: DeepSeek's pairs (2i, 2i + 1), written back
// de-interleaved; else rotate_half's pairs (i, i + half). The rotated values must lie inside their head
// (offset + 2 * half <= head, or <= row for one head): checked.
void rope(float *x, int64_t tokens, int64_t row, int64_t heads, int64_t head, int64_t offset, const float *cos,
          const float *sin, int64_t half, int64_t seq_len, bool interleaved);
// MLA keys [tokens, heads, nope + rope]: each head's no-RoPE part from kv ([tokens, heads, nope + v]), then the
// token's shared rotated part from ckv + rope_offset (rows of ckv_row floats).
void mla_keys(float *key, const float *kv, const float *ckv, int64_t tokens, int64_t heads, int64_t nope,
              int64_t rope_dim, int64_t v_dim, int64_t ckv_row, int64_t rope_offset);
// dst[i, :] = src[rows[i], :] for i < m, rows of n floats.
void gather_rows(float *dst, const float *src, const int32_t *rows, int64_t m, int64_t n);
// out[rows[i], :] += weights[i] * y[i, :] for i < m (rows distinct), rows of n floats.
void scatter_add_rows(float *out, const float *y, const int32_t *rows, const float *weights, int64_t m, int64_t n);
// out[t, :] += sigmoid(gate[t]) * y[t, :] (gate == nullptr: += y), rows of n floats.
void add_gated(float *out, const float *y, const float *gate, int64_t rows, int64_t n);
// Attention scores are computed for as many windows at a time as fit in this many bytes (at least one window).
constexpr size_t kAttentionScoreBytes = size_t(512) << 20;
// Floats of the scores buffer causal_attention() uses for `windows` windows of seq_len tokens.
size_t attention_score_floats(int64_t windows, int64_t seq_len, size_t score_bytes = kAttentionScoreBytes);
// forward/attention.h's causal_attention on device operands; `scores` is grown to attention_score_floats()
// as needed. Writes only the [dv] values of each (token, head) of out.
void causal_attention(cublasHandle_t blas, Buffer<float> &scores, float *out, const float *q, const float *k,
                      const float *v, const AttentionShape &a, size_t score_bytes = kAttentionScoreBytes);
// Next-token losses' running log-sum-exp over one vocabulary chunk: logits [tokens, vc] of rows
// v0 .. v0 + vc; per token, run_max/run_sum take the chunk in, and target[t] gets the logit of next[t] when it
// falls in the chunk (next[t] < 0: no target).
void logsumexp_update(const float *logits, int64_t tokens, int64_t vc, int64_t v0, const int32_t *next,
                      float *run_max, double *run_sum, float *target);

}  // namespace ktq::cuda
