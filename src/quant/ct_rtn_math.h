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


// |e|^2.4, the weight llm-compressor's MSE observer gives each error (its
// `norm`), from float32 basic operations only, so the host and a GPU give the
// same bits (libm's pow and CUDA's differ in the last place, which could tip
// a near tie between two candidate ranges). With a = e^2 = m * 2^k, m in
// [1, 2): |e|^2.4 = a * a^0.2 and a^0.2 = m^0.2 * 2^(k/5), m^0.2 from a
// degree-5 polynomial in m - 1.5 (relative error below 1.4e-6, fitted for
// this file). Below FLT_MIN (|e| < 1.1e-19) the term is taken as 0.
KTQ_HD float pow_2p4(float e) {
    // Branch-free (selects, no table), so that a compiler can vectorise it.
    const float a = mul_rn(e, e);
    const uint32_t u = half::bits_of(a);
    const int k = static_cast<int>((u >> 23) & 0xffu) - 127;
    const float t = sub_rn(half::float_of((u & 0x007fffffu) | 0x3f800000u), 1.5f);  // m - 1.5, exact
    float m = 0.004171800799667835f;
    m = add_rn(mul_rn(m, t), -0.00800029095262289f);
    m = add_rn(mul_rn(m, t), 0.015355565585196018f);
    m = add_rn(mul_rn(m, t), -0.03848135098814964f);
    m = add_rn(mul_rn(m, t), 0.14459839463233948f);
    m = add_rn(mul_rn(m, t), 1.0844706296920776f);
    // k = 5q + r with r in 0..4 (k + 130 >= 0 keeps the division exact and non-negative).
    const int q = (k + 130) / 5 - 26, r = (k + 130) - 5 * ((k + 130) / 5);
    // 2^(r/5) by selects (a lookup table would become a gather the compiler
    // cannot prove free of aliasing).
    float root = 1.0f;
    root = r == 1 ? 1.1486983549970350f : root;
    root = r == 2 ? 1.3195079107728942f : root;
    root = r == 3 ? 1.5157165665103980f : root;
    root = r == 4 ? 1.7411011265922482f : root;
    const float two_q = half::float_of(static_cast<uint32_t>(q + 127) << 23);
    const float v = mul_rn(a, mul_rn(mul_rn(m, root), two_q));
    return k == -127 ? 0.0f : v;  // zero or subnormal
}

// The MSE search's error of one weight x under params p: |value - x|^2.4.
KTQ_HD float mse_term(int dtype, int bits, bool dtype_rounding, float x, const GroupParams &p) {
    return pow_2p4(sub_rn(value_of(dtype, code_of(dtype, bits, x, p, dtype_rounding), p), x));
}

// A group's error from its 8 partial sums (weight j goes to part[j % 8], in
// order): the fixed order every implementation of the search uses.
KTQ_HD double sum_parts(const double *part) {
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

// Candidate i's shrunk bound: p * bound rounded to the dtype, p = 1 - i / 100.
KTQ_HD float mse_bound(int dtype, int i, float bound) {
    return round_to(dtype, mul_rn(static_cast<float>(1.0 - i / 100.0), bound));
}

// The MSE observer (llm-compressor's "mse": maxshrink 0.2, grid 100,
// norm 2.4): the group's range [lo, hi] shrunk by p = 1 - i / 100 for
// i = 0 .. 19, each bound rounded to the dtype (as torch scales a
// half-precision tensor), keeping the first p whose codes give the smallest
// sum of |value - x|^2.4. Unlike llm-compressor, every step is evaluated for
// every group: its early stop (no group of the whole tensor improved for 5
// steps) would make a group's scale depend on the other groups it was
// stored with, and its sums are in the model's dtype, where near ties are
// common; here each group's search stands alone, summed in double in a fixed
// order (8 partial sums), the same on every device and thread count.
constexpr int kMseSteps = 20;

// `x` is anything indexable that gives the group's weights as floats. The
// host's row quantizer (ct_rtn.cpp) computes the same sums in a vectorised
// loop; tests check the two against each other.
template <typename Weights>
KTQ_HD GroupParams mse_group_params(int dtype, int bits, bool symmetric, bool dtype_rounding, const Weights &x, int n,
                                    float lo, float hi) {
    float best_lo = lo, best_hi = hi;
    double best = 0;
    for (int i = 0; i < kMseSteps; ++i) {
        const float l = mse_bound(dtype, i, lo), h = mse_bound(dtype, i, hi);
        const GroupParams gp = group_params(dtype, bits, symmetric, l, h);
        double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int j = 0; j < n; ++j) part[j & 7] += static_cast<double>(mse_term(dtype, bits, dtype_rounding, x[j], gp));
        const double err = sum_parts(part);
        if (i == 0 || err < best) best = err, best_lo = l, best_hi = h;
    }
    return group_params(dtype, bits, symmetric, best_lo, best_hi);
}

}  // namespace ktq::ct::math
