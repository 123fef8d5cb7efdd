// The forward pass's one dense kernel: C[m, n] = A[m, k] * W[n, k]^T in
// float32, W being a Linear's weight as checkpoints store it (out x in).
// oneDNN's matmul where ktq was built with it (AVX-512 / AMX kernels, its
// own OpenMP threads); otherwise a plain loop spread over the pool.
#pragma once

#include <cstdint>

namespace ktq {

class ThreadPool;
struct AttentionShape;

void matmul_abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, ThreadPool &pool);

// Somewhere else to run the forward's products: cuda/cuda_matmul.h runs them
// with cuBLAS (float32, no TF32), keeping weights on the GPU between calls.
// Weights are recognised by address: forget() before a weight buffer's
// contents change (the next layer, GPTQ's quantized weights), or before a
// freed buffer's address may come back with other values.
class MatmulBackend {
public:
    virtual ~MatmulBackend() = default;
    // keep_weight: w is a layer's weight, worth keeping for later calls
    // (else a buffer about to be refilled, such as the LM head's chunks).
    virtual void abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, bool keep_weight) = 0;
    virtual void forget() = 0;
    // Only the copy kept for the weight at `w` (AWQ swaps a few Linears'
    // weights per candidate while the rest of the block stays cached).
    virtual void forget(const float *w) = 0;
    // forward/attention.h's causal_attention on the device; false: not
    // offered here (the caller runs it on the CPU).
    virtual bool causal_attention(float *out, const float *q, const float *k, const float *v,
                                  const AttentionShape &shape) {
        return false;
    }
    // A SwiGLU MLP without biases, its intermediates kept on the device:
    // y [rows, out] = (silu(x gate^T) * (x up^T)) down^T, x [rows, in],
    // gate/up [inter, in], down [out, inter]; with down == nullptr, y
    // [rows, inter] is the product before down. Weights are kept as abt()'s
    // are. false: not offered here.
    virtual bool swiglu(float *y, const float *x, const float *gate, const float *up, const float *down,
                        int64_t rows, int64_t in, int64_t inter, int64_t out) {
        return false;
    }
};

// matmul_abt on `backend` when there is one, else on the pool.
void matmul_abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, ThreadPool &pool,
                MatmulBackend *backend, bool keep_weight = true);

// "onednn <version>" or "built-in".
const char *matmul_backend();

}  // namespace ktq
