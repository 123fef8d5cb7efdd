// The per-group arithmetic of compressed-tensors RTN (see ct_rtn.h), written
// once for the host (ct_rtn.cpp) and for CUDA kernels (ct_rtn.cu): plain
// float32 operations, each rounded explicitly to the model's dtype, no FMA
// contraction (the device path uses the _rn intrinsics), so both give the
// same bits.
#pragma once

#include <cmath>
#include <cstdint>

#include "runtime/half_float.h"

namespace ktq::ct::math {

// Element dtypes, as small integers usable in kernels.
enum : int { kBF16 = 0, kF16 = 1, kF32 = 2 };

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

using half::bf16_bits;
using half::f16_bits;
using half::from_bf16;
using half::from_f16;

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
