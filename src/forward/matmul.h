// The forward pass's one dense kernel: C[m, n] = A[m, k] * W[n, k]^T in
// float32, W being a Linear's weight as checkpoints store it (out x in).
// oneDNN's matmul where ktq was built with it (AVX-512 / AMX kernels, its
// own OpenMP threads); otherwise a plain loop spread over the pool.
#pragma once

#include <cstdint>

namespace ktq {

class ThreadPool;

void matmul_abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, ThreadPool &pool);

// "onednn <version>" or "built-in".
const char *matmul_backend();

}  // namespace ktq
