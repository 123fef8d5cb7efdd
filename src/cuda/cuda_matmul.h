// The forward pass's products on a CUDA device: C = A W^T with cuBLAS in
// float32 (no TF32, the precision of the CPU path). Weights are copied to
// the device on first use and kept (by address) while they fit the cache;
// activations go up and results come back at each call. Built from
// cuda_matmul.cu with -DKTQ_CUDA=ON; without CUDA make_cuda_matmul throws
// KTQ_ERR_UNSUPPORTED. Not thread-safe: one per forward pass.
#pragma once

#include <cstddef>
#include <memory>

#include "forward/matmul.h"

namespace ktq {

// cache_bytes: device memory for weights (0 = half of what is free).
std::unique_ptr<MatmulBackend> make_cuda_matmul(int device, size_t cache_bytes = 0);

}  // namespace ktq
