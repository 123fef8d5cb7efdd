#include <cuda_runtime.h>

#include <cstring>

#include "cuda/cuda_support.h"
#include "cuda/fp8_dequant.h"
#include "runtime/half_float.h"
#include "runtime/error.h"

namespace ktq {

namespace {

// E4M3 "fn": 1 sign, 4 exponent (bias 7), 3 mantissa bits; 0x7f/0xff are NaN.
__device__ float e4m3_to_f32(uint8_t v) {
    const unsigned sign = v >> 7, e = (v >> 3) & 0xf, m = v & 7;
    float mag;
    if (e == 0xf && m == 7)
        mag = __int_as_float(0x7fc00000);
    else if (e == 0)
        mag = ldexpf(static_cast<float>(m), -9);
    else
        mag = ldexpf(static_cast<float>(m + 8), static_cast<int>(e) - 10);
    return sign ? -mag : mag;
}


__global__ void dequant_kernel(uint16_t *out, const uint8_t *in, const float *scale, int64_t rows, int64_t cols,
                               int block_rows, int block_cols, int64_t scale_cols) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    const int64_t r = i / cols, c = i % cols;
    const float s = scale[(r / block_rows) * scale_cols + c / block_cols];
    // __fmul_rn: one IEEE multiply, never fused, exactly like the CPU path.
    out[i] = half::bf16_bits(__fmul_rn(e4m3_to_f32(in[i]), s));
}

using ktq::cuda::check;

}  // namespace

void cuda_dequant_fp8_to_bf16(uint16_t *out, const uint8_t *fp8, const float *scale, int64_t rows, int64_t cols,
                              int block_rows, int block_cols) {
    const int64_t n = rows * cols;
    const int64_t scale_rows = (rows + block_rows - 1) / block_rows, scale_cols = (cols + block_cols - 1) / block_cols;
    uint8_t *d_in = nullptr;
    float *d_scale = nullptr;
    uint16_t *d_out = nullptr;
    auto release = [&] {
        cudaFree(d_in);
        cudaFree(d_scale);
        cudaFree(d_out);
    };
    try {
        check(cudaMalloc(&d_in, static_cast<size_t>(n)), "cudaMalloc");
        check(cudaMalloc(&d_scale, static_cast<size_t>(scale_rows * scale_cols) * sizeof(float)), "cudaMalloc");
        check(cudaMalloc(&d_out, static_cast<size_t>(n) * 2), "cudaMalloc");
        check(cudaMemcpy(d_in, fp8, static_cast<size_t>(n), cudaMemcpyHostToDevice), "copy to device");
        check(cudaMemcpy(d_scale, scale, static_cast<size_t>(scale_rows * scale_cols) * sizeof(float),
                         cudaMemcpyHostToDevice),
              "copy to device");
        const int threads = 256;
        const unsigned blocks = static_cast<unsigned>((n + threads - 1) / threads);
        if (n > 0) dequant_kernel<<<blocks, threads>>>(d_out, d_in, d_scale, rows, cols, block_rows, block_cols, scale_cols);
        check(cudaGetLastError(), "kernel launch");
        check(cudaMemcpy(out, d_out, static_cast<size_t>(n) * 2, cudaMemcpyDeviceToHost), "copy to host");
    } catch (...) {
        release();
        throw;
    }
    release();
}

}  // namespace ktq
