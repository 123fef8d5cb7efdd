// BF16 and IEEE binary16 conversions, written once for the host and for
// CUDA kernels: float -> half rounds to nearest even (subnormals, overflow
// to infinity and NaN included), half -> float is exact. Every converter,
// quantizer and reader of ktq uses these.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define KTQ_HD __host__ __device__ __forceinline__
#else
#define KTQ_HD inline
#endif

namespace ktq::half {

KTQ_HD uint32_t bits_of(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
#endif
}

KTQ_HD float float_of(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, 4);
    return f;
#endif
}

// BF16, round to nearest even; NaN stays a (quiet) NaN.
KTQ_HD uint16_t bf16_bits(float f) {
    const uint32_t u = bits_of(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
    return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

KTQ_HD float from_bf16(uint16_t b) { return float_of(static_cast<uint32_t>(b) << 16); }

// IEEE binary16, round to nearest even.
KTQ_HD uint16_t f16_bits(float f) {
    const uint32_t u = bits_of(f);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;   // NaN
    if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to Inf
    if (a >= 0x38800000u) {                       // normal half (>= 2^-14)
        const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
        return sign | static_cast<uint16_t>((r - (112u << 23)) >> 13);
    }
    // Subnormal half: the value in units of 2^-24 (scaling by 2^24 is exact),
    // rounded to an integer, ties to even.
    return sign | static_cast<uint16_t>(rintf(float_of(a) * 16777216.0f));
}

KTQ_HD float from_f16(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) return float_of(bits_of(static_cast<float>(m) * 5.9604644775390625e-08f) | sign);  // m * 2^-24, exact
    if (e == 31) return float_of(sign | 0x7f800000u | (m << 13));
    return float_of(sign | ((e + 112u) << 23) | (m << 13));
}

}  // namespace ktq::half
