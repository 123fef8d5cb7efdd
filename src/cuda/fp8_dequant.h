// Block-FP8 dequantization on a CUDA device: the GPU twin of the FP8 path of
// Model::read_rows() (value x scale of its block in float32, then BF16
// round-to-nearest-even), for the GPU engines that take FP8 checkpoints.
// Bit-identical to the CPU path; tests/unit/test_cuda_fp8.cpp checks it.
#pragma once

#include <cstdint>
#include <string>

namespace ktq {

// Host-to-host convenience: copies `fp8` [rows, cols] (E4M3 bytes) and
// `scale` [ceil(rows/br), ceil(cols/bc)] (float32) to the device, runs the
// kernel, copies BF16 [rows, cols] back into `out`. Throws ktq::Error
// (KTQ_ERR_UNSUPPORTED when no device is usable) on failure.
void cuda_dequant_fp8_to_bf16(uint16_t *out, const uint8_t *fp8, const float *scale, int64_t rows, int64_t cols,
                              int block_rows, int block_cols);

}  // namespace ktq
