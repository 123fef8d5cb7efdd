// The forward pass's one dense kernel: C[m, n] = A[m, k] * W[n, k]^T in
// float32, W being a Linear's weight as checkpoints store it (out x in).
// oneDNN's matmul where ktq was built with it (AVX-512 / AMX kernels, its
// own OpenMP threads); otherwise a plain loop spread over the pool.
#pragma once

#include <cstdint>

namespace ktq {

class ThreadPool;

void matmul_abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, ThreadPool &pool);

// Somewhere else to run the forward's products: cuda/cuda_matmul.h runs them
// with cuBLAS (float32, no TF32), keeping weights on the GPU between calls.
// Weights are recognised by address: forget() before a weight buffer's
// contents change (the next layer, GPTQ's quantized weights).
class MatmulBackend {
public:
    virtual ~MatmulBackend() = default;
    // keep_weight: w is a layer's weight, worth keeping for later calls
    // (else a buffer about to be refilled, such as the LM head's chunks).
    virtual void abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, bool keep_weight) = 0;
    virtual void forget() = 0;
};

// matmul_abt on `backend` when there is one, else on the pool.
void matmul_abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, ThreadPool &pool,
                MatmulBackend *backend, bool keep_weight = true);

// "onednn <version>" or "built-in".
const char *matmul_backend();

}  // namespace ktq
