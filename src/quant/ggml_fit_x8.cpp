// ggml_fit's searches eight sub-blocks at a time on AVX2 (see ggml_fit.h):
// the lanes are independent fits; each does the scalar code's operations in
// its order (mul, then add: never a fused multiply-add), so every result is
// bit-identical to the scalar function's. Branches of the scalar code become
// per-lane masks.
#include "quant/ggml_fit.h"

#include <algorithm>
#include <atomic>

#include "runtime/cpu_features.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define KTQ_FIT_X8 1
#endif

namespace ktq::ggml_fit {

namespace {
std::atomic<bool> g_force_scalar{false};
}  // namespace

void set_force_scalar(bool scalar) { g_force_scalar.store(scalar, std::memory_order_relaxed); }

#ifdef KTQ_FIT_X8

bool x8_available() {
    static const bool ok = CpuFeatures::get().avx2;
    return ok && !g_force_scalar.load(std::memory_order_relaxed);
}

namespace {

#define KTQ_AVX2 __attribute__((target("avx2")))

// nearest() on eight lanes: the same float add and bit manipulation.
KTQ_AVX2 inline __m256i nearest8(__m256 v) {
    const __m256i bits = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.0f)));
    return _mm256_sub_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

KTQ_AVX2 inline __m256i clamp8(__m256i v, int lo, int hi) {
    return _mm256_max_epi32(_mm256_set1_epi32(lo), _mm256_min_epi32(_mm256_set1_epi32(hi), v));
}

KTQ_AVX2 inline __m256 lanes(const float *p, size_t stride) {
    return _mm256_setr_ps(p[0], p[stride], p[2 * stride], p[3 * stride], p[4 * stride], p[5 * stride], p[6 * stride],
                          p[7 * stride]);
}

KTQ_AVX2 inline __m256 abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

KTQ_AVX2 inline __m256 error_of(__m256 diff, bool use_mad) { return use_mad ? abs8(diff) : _mm256_mul_ps(diff, diff); }

// symmetric()'s codes for one trial scale (numerator / max) and their weighted sums.
KTQ_AVX2 inline void symmetric_trial(int n, int nmax, const __m256 *X, const __m256 *W, __m256 max, float numerator,
                                     __m256i *codes, __m256 *sumlx, __m256 *suml2) {
    const __m256 iscale = _mm256_div_ps(_mm256_set1_ps(numerator), max);
    __m256 slx = _mm256_setzero_ps(), sl2 = _mm256_setzero_ps();
    for (int i = 0; i < n; ++i) {
        const __m256i l = clamp8(nearest8(_mm256_mul_ps(iscale, X[i])), -nmax, nmax - 1);
        codes[i] = l;
        const __m256 lf = _mm256_cvtepi32_ps(l);
        slx = _mm256_add_ps(slx, _mm256_mul_ps(_mm256_mul_ps(W[i], X[i]), lf));
        sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(W[i], lf), lf));
    }
    *sumlx = slx;
    *suml2 = sl2;
}

}  // namespace

KTQ_AVX2 void symmetric_x8(int n, int nmax, const float *x, size_t x_stride, const float *weights, size_t w_stride,
                           int8_t *L, size_t l_stride, float *scale_out) {
    __m256 X[32] = {}, W[32] = {};  // n <= 32 lanes of values and weights
    __m256i best_codes[32], codes[32];
    for (int i = 0; i < n; ++i) {
        X[i] = lanes(x + i, x_stride);
        W[i] = weights ? lanes(weights + i, w_stride) : _mm256_mul_ps(X[i], X[i]);
    }
    __m256 max = _mm256_setzero_ps(), amax = _mm256_setzero_ps();
    for (int i = 0; i < n; ++i) {
        const __m256 ax = abs8(X[i]);
        const __m256 bigger = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, ax, bigger);
        max = _mm256_blendv_ps(max, X[i], bigger);
    }
    const __m256 zero_lane = _mm256_cmp_ps(amax, _mm256_set1_ps(kGroupMaxEps), _CMP_LT_OQ);
    __m256 sumlx, suml2;
    symmetric_trial(n, nmax, X, W, max, static_cast<float>(-nmax), best_codes, &sumlx, &suml2);
    const __m256 zero = _mm256_setzero_ps();
    __m256 scale = _mm256_and_ps(_mm256_cmp_ps(suml2, zero, _CMP_NEQ_UQ), _mm256_div_ps(sumlx, suml2));
    __m256 best = _mm256_mul_ps(scale, sumlx);
    for (int step = -9; step <= 9; ++step) {
        if (step == 0) continue;
        __m256 slx, sl2;
        symmetric_trial(n, nmax, X, W, max, -(nmax + 0.1f * step), codes, &slx, &sl2);
        const __m256 better = _mm256_and_ps(_mm256_cmp_ps(sl2, zero, _CMP_GT_OQ),
                                            _mm256_cmp_ps(_mm256_mul_ps(slx, slx), _mm256_mul_ps(best, sl2), _CMP_GT_OQ));
        if (_mm256_movemask_ps(better) == 0) continue;
        const __m256i take = _mm256_castps_si256(better);
        for (int i = 0; i < n; ++i) best_codes[i] = _mm256_blendv_epi8(best_codes[i], codes[i], take);
        const __m256 s = _mm256_div_ps(slx, sl2);
        scale = _mm256_blendv_ps(scale, s, better);
        best = _mm256_blendv_ps(best, _mm256_mul_ps(s, slx), better);
    }
    scale = _mm256_andnot_ps(zero_lane, scale);
    alignas(32) float sc[8];
    alignas(32) int32_t lane_codes[8], zl[8];
    _mm256_store_ps(sc, scale);
    _mm256_store_si256(reinterpret_cast<__m256i *>(zl), _mm256_castps_si256(zero_lane));
    for (int k = 0; k < 8; ++k) scale_out[k] = sc[k];
    for (int i = 0; i < n; ++i) {
        _mm256_store_si256(reinterpret_cast<__m256i *>(lane_codes), best_codes[i]);
        for (int k = 0; k < 8; ++k) L[k * l_stride + i] = static_cast<int8_t>(zl[k] ? 0 : lane_codes[k] + nmax);
    }
}

KTQ_AVX2 void affine_x8(int n, int nmax, const float *x, size_t x_stride, const float *weights, size_t w_stride,
                        uint8_t *L, size_t l_stride, float *scale_out, float *neg_min_out, float rmin, float rdelta,
                        int nstep, bool use_mad) {
    __m256 X[32] = {}, W[32] = {};  // n <= 32 lanes of values and weights
    __m256i best_codes[32], codes[32];
    for (int i = 0; i < n; ++i) {
        X[i] = lanes(x + i, x_stride);
        W[i] = lanes(weights + i, w_stride);
    }
    __m256 min = X[0], max = X[0], sum_w = W[0], sum_x = _mm256_mul_ps(W[0], X[0]);
    for (int i = 1; i < n; ++i) {
        min = _mm256_min_ps(X[i], min);  // x < min ? x : min, as the scalar `if`
        max = _mm256_max_ps(X[i], max);
        sum_w = _mm256_add_ps(sum_w, W[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(W[i], X[i]));
    }
    const __m256 zero = _mm256_setzero_ps();
    min = _mm256_blendv_ps(min, zero, _mm256_cmp_ps(min, zero, _CMP_GT_OQ));
    const __m256 flat = _mm256_cmp_ps(max, min, _CMP_EQ_OQ);
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps(static_cast<float>(nmax)), _mm256_sub_ps(max, min));
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
    __m256 best = zero;
    for (int i = 0; i < n; ++i) {
        const __m256i l = clamp8(nearest8(_mm256_mul_ps(iscale, _mm256_sub_ps(X[i], min))), 0, nmax);
        best_codes[i] = l;
        const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(l)), min), X[i]);
        best = _mm256_add_ps(best, _mm256_mul_ps(W[i], error_of(diff, use_mad)));
    }
    for (int step = 0; nstep >= 1 && step <= nstep; ++step) {  // nstep < 1: the first fit only
        // max - min again each time: a better fit moves min, and the next trials scale from it.
        iscale = _mm256_div_ps(_mm256_set1_ps(rmin + rdelta * step + nmax), _mm256_sub_ps(max, min));
        __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < n; ++i) {
            const __m256i l = clamp8(nearest8(_mm256_mul_ps(iscale, _mm256_sub_ps(X[i], min))), 0, nmax);
            codes[i] = l;
            const __m256 lf = _mm256_cvtepi32_ps(l);
            const __m256 wl = _mm256_mul_ps(W[i], lf);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, lf));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, X[i]));
        }
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        const __m256 ok = _mm256_cmp_ps(D, zero, _CMP_GT_OQ);
        if (_mm256_movemask_ps(ok) == 0) continue;
        __m256 this_scale =
            _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
        __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
        const __m256 positive = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
        this_min = _mm256_blendv_ps(this_min, zero, positive);
        this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), positive);
        __m256 cur = zero;
        for (int i = 0; i < n; ++i) {
            const __m256 diff = _mm256_sub_ps(
                _mm256_add_ps(_mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(codes[i])), this_min), X[i]);
            cur = _mm256_add_ps(cur, _mm256_mul_ps(W[i], error_of(diff, use_mad)));
        }
        const __m256 better = _mm256_and_ps(ok, _mm256_cmp_ps(cur, best, _CMP_LT_OQ));
        if (_mm256_movemask_ps(better) == 0) continue;
        const __m256i take = _mm256_castps_si256(better);
        for (int i = 0; i < n; ++i) best_codes[i] = _mm256_blendv_epi8(best_codes[i], codes[i], take);
        best = _mm256_blendv_ps(best, cur, better);
        scale = _mm256_blendv_ps(scale, this_scale, better);
        min = _mm256_blendv_ps(min, this_min, better);
    }
    // Flat lanes (max == min) stop before any of this in the scalar code: codes 0, scale 0.
    scale = _mm256_andnot_ps(flat, scale);
    alignas(32) float sc[8], mn[8];
    alignas(32) int32_t lane_codes[8], fl[8];
    _mm256_store_ps(sc, scale);
    _mm256_store_ps(mn, min);
    _mm256_store_si256(reinterpret_cast<__m256i *>(fl), _mm256_castps_si256(flat));
    for (int k = 0; k < 8; ++k) {
        scale_out[k] = sc[k];
        neg_min_out[k] = -mn[k];
    }
    for (int i = 0; i < n; ++i) {
        _mm256_store_si256(reinterpret_cast<__m256i *>(lane_codes), best_codes[i]);
        for (int k = 0; k < 8; ++k) L[k * l_stride + i] = static_cast<uint8_t>(fl[k] ? 0 : lane_codes[k]);
    }
}

#else  // not x86: the scalar functions only

bool x8_available() { return false; }
void symmetric_x8(int, int, const float *, size_t, const float *, size_t, int8_t *, size_t, float *) {}
void affine_x8(int, int, const float *, size_t, const float *, size_t, uint8_t *, size_t, float *, float *, float, float,
               int, bool) {}

#endif

}  // namespace ktq::ggml_fit
