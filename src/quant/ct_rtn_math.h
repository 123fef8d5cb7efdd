// The per-group arithmetic of compressed-tensors RTN (see ct_rtn.h), written
// once for the host (ct_rtn.cpp) and for CUDA kernels (ct_rtn.cu): plain
// float32 operations, each rounded explicitly to the model's dtype, no FMA
// contraction (the device path uses the _rn intrinsics), so both give the
// same bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define KTQ_HD __host__ __device__ __forceinline__
#else
#define KTQ_HD inline
#endif

namespace ktq::ct::math {

// Element dtypes, as small integers usable in kernels.
enum : int { kBF16 = 0, kF16 = 1, kF32 = 2 };

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

KTQ_HD float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

KTQ_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

KTQ_HD float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

KTQ_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

// Round half to even (the values here are small: clamped codes).
KTQ_HD float rint_even(float v) { return rintf(v); }

KTQ_HD uint16_t bf16_bits(float f) {
    const uint32_t u = bits_of(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
    return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

KTQ_HD float from_bf16(uint16_t b) { return float_of(static_cast<uint32_t>(b) << 16); }

// IEEE binary16, round to nearest even, subnormals and overflow included.
KTQ_HD uint16_t f16_bits(float f) {
    const uint32_t u = bits_of(f);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;                   // NaN
    if (a >= 0x477ff000u) return sign | 0x7c00u;                  // >= 65520 rounds to Inf
    if (a >= 0x38800000u) {                                       // normal half (>= 2^-14)
        const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
        return sign | static_cast<uint16_t>((r - (112u << 23)) >> 13);
    }
    // Subnormal half: a multiple of 2^-24; scaling by 2^24 is exact.
    return sign | static_cast<uint16_t>(rint_even(mul_rn(float_of(a), 16777216.0f)));
}

KTQ_HD float from_f16(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        const float v = mul_rn(static_cast<float>(m), 5.9604644775390625e-08f);  // m * 2^-24, exact
        return float_of(bits_of(v) | sign);
    }
    if (e == 31) return float_of(sign | 0x7f800000u | (m << 13));
    return float_of(sign | ((e + 112u) << 23) | (m << 13));
}

KTQ_HD float round_to(int dtype, float f) {
    if (dtype == kBF16) return from_bf16(bf16_bits(f));
    if (dtype == kF16) return from_f16(f16_bits(f));
    return f;
}

// torch.finfo(dtype).eps: the scale that replaces a zero scale.
KTQ_HD float dtype_eps(int dtype) {
    return dtype == kBF16 ? 0.0078125f : dtype == kF16 ? 0.0009765625f : 1.1920928955078125e-07f;
}

struct GroupParams {
    float scale;  // a value of the dtype
    float zp;     // an integer in [qmin, qmax]; 0 when symmetric
};

// Scale and zero point of one group whose minimum and maximum are lo and hi.
KTQ_HD GroupParams group_params(int dtype, int bits, bool symmetric, float lo, float hi) {
    const float qmin = -static_cast<float>(1 << (bits - 1)), qmax = static_cast<float>((1 << (bits - 1)) - 1);
    lo = fminf(lo, 0.0f);
    hi = fmaxf(hi, 0.0f);
    GroupParams p{0.0f, 0.0f};
    if (symmetric) {
        const float half_range = round_to(dtype, div_rn(sub_rn(qmax, qmin), 2.0f));
        p.scale = round_to(dtype, div_rn(fmaxf(-lo, hi), half_range));
    } else {
        p.scale = round_to(dtype, div_rn(round_to(dtype, sub_rn(hi, lo)), sub_rn(qmax, qmin)));
        // Computed before a zero scale is replaced: an all-zero group gives
        // 0/0 = NaN here, which torch turns into code 0 on the int8 cast.
        const float zp = round_to(dtype, sub_rn(qmin, round_to(dtype, div_rn(lo, p.scale))));
        p.zp = zp != zp ? 0.0f : rint_even(fminf(fmaxf(zp, qmin), qmax));
    }
    if (p.scale == 0.0f) p.scale = dtype_eps(dtype);
    return p;
}

// The signed code of weight x (a value of the dtype). `dtype_rounding`:
// x / scale (+ zp) rounded to the dtype before rint, as eager torch computes
// it (llm-compressor on a CPU); otherwise kept in float32, as
// compressed-tensors' Triton kernel computes it (llm-compressor on a GPU).
KTQ_HD int code_of(int dtype, int bits, float x, const GroupParams &p, bool dtype_rounding) {
    const float qmin = -static_cast<float>(1 << (bits - 1)), qmax = static_cast<float>((1 << (bits - 1)) - 1);
    const int rd = dtype_rounding ? dtype : kF32;
    float v = round_to(rd, div_rn(x, p.scale));
    if (p.zp != 0.0f) v = round_to(rd, add_rn(v, p.zp));
    return static_cast<int>(rint_even(fminf(fmaxf(v, qmin), qmax)));
}

// The weight a code stands for: (q - zp) * scale, each step in the dtype.
KTQ_HD float value_of(int dtype, int q, const GroupParams &p) {
    const float d = round_to(dtype, sub_rn(static_cast<float>(q), p.zp));
    return round_to(dtype, mul_rn(d, p.scale));
}

}  // namespace ktq::ct::math
