// The scale searches ggml's quantizers share (ggml-quants.c's make_*_quants),
// each written once and used by the reference and the importance-weighted
// (imatrix) paths of every block type. Same float expressions in the same
// order as ggml, so the codes and scales are bit-identical.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ktq::ggml_fit {

constexpr float kGroupMaxEps = 1e-15f;  // below this a group counts as all zero

// ggml's nearest_int: adding 1.5 * 2^23 puts the rounded integer (ties to
// even) in the low mantissa bits.
inline int nearest(float v) {
    const float biased = v + 12582912.0f;
    int32_t bits;
    std::memcpy(&bits, &biased, 4);
    return (bits & 0x007fffff) - 0x00400000;
}

// Symmetric codes in [-nmax, nmax) with a scale fitted by weighted least
// squares, trying 18 scales around nmax/max. `weights` null = x^2. Returns
// the scale; L gets codes + nmax. (ggml: make_qx_quants, rmse_type 1.)
float symmetric(int n, int nmax, const float *x, int8_t *L, const float *weights);

// Symmetric codes in [-nmax, nmax) refined one weight at a time (up to 5
// passes) while the x^2-weighted fit improves. Returns the scale; L gets
// codes + nmax. (ggml: make_q3_quants with rmse.)
float symmetric_refined(int n, int nmax, const float *x, int8_t *L);

// Asymmetric codes in [0, nmax] with a scale and a (non-positive) minimum
// fitted by weighted least squares over nstep + 1 trial scales. Returns the
// scale; *neg_min gets -min. (ggml: make_qkx2_quants, and make_qkx3_quants
// when given weights: the two agree then.)
float affine(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *neg_min, uint8_t *Laux,
             float rmin, float rdelta, int nstep, bool use_mad);

// Codes in [0, nmax] for non-negative x (the sub-block scales and mins of a
// super-block), the scale chosen among 9 trials by weighted error, then the
// codes refined one at a time (up to 5 passes). (ggml: make_qp_quants.)
float positive(int n, int nmax, const float *x, uint8_t *L, const float *weights);

}  // namespace ktq::ggml_fit

namespace ktq::ggml_fit {

// Eight independent fits at once, one per AVX2 lane: lane k fits the n
// values at x + k * x_stride (weights at weights + k * w_stride; null = x^2
// for symmetric) and writes its codes to L + k * l_stride and its results
// to scale[k] (and neg_min[k]). Every lane runs exactly the scalar
// function's float operations in the same order - only the lanes are
// parallel, no sum is reassociated - so the results are bit-identical to
// eight calls of symmetric() / affine() (tests/unit/test_ggml_fit.cpp).
// n <= 32. Only call when x8_available().
bool x8_available();
// Tests: force the scalar path (x8_available() false) or not.
void set_force_scalar(bool scalar);
void symmetric_x8(int n, int nmax, const float *x, size_t x_stride, const float *weights, size_t w_stride, int8_t *L,
                  size_t l_stride, float *scale);
void affine_x8(int n, int nmax, const float *x, size_t x_stride, const float *weights, size_t w_stride, uint8_t *L,
               size_t l_stride, float *scale, float *neg_min, float rmin, float rdelta, int nstep, bool use_mad);

}  // namespace ktq::ggml_fit
