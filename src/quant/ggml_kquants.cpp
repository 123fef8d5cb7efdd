// ggml's K-quant block types (super-blocks of 256 weights): Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K. Each has two quantizers, as in ggml-quants.c: the
// reference path (quantize_row_*_ref, no importance) and the importance-
// weighted path llama-quantize takes with an imatrix (quantize_row_*_impl).
// Both follow ggml's arithmetic operation by operation - the same float
// expressions in the same order, the same round-to-nearest trick, FP16
// scales rounded to nearest even - so the blocks are bit-identical
// (tests/golden/ggml_kquants.json, ggml_importance.json, made from ggml
// itself); they share the block packing and the final re-quantization. The library is built with -ffp-contract=off so
// that no multiply-add is fused where ggml's baseline build has none.
#include "quant/ggml_kquants.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/ggml_blocks.h"
#include "quant/ggml_fit.h"
#include "reading/dtype.h"

namespace ktq {

namespace {

constexpr int QK_K = 256;
using ggml_fit::kGroupMaxEps;
using ggml_fit::nearest;

inline void put_half(uint8_t *p, float v) {
    const uint16_t h = f32_to_f16(v);
    std::memcpy(p, &h, 2);
}

inline float get_half(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
}

// `count` sub-blocks of n values each (contiguous, weights alike), fitted as
// ggml_fit::affine / symmetric fit them one by one: eight at a time on AVX2
// (the same bits), the rest one by one.
void fit_affine_subblocks(int count, int n, int nmax, const float *x, const float *weights, uint8_t *L, float *scales,
                          float *neg_mins, float rmin, float rdelta, int nstep, bool use_mad) {
    int j = 0;
    if (ggml_fit::x8_available())
        for (; j + 8 <= count; j += 8)
            ggml_fit::affine_x8(n, nmax, x + n * j, n, weights + n * j, n, L + n * j, n, scales + j, neg_mins + j, rmin,
                                rdelta, nstep, use_mad);
    uint8_t Laux[32];
    for (; j < count; ++j)
        scales[j] = ggml_fit::affine(n, nmax, x + n * j, weights + n * j, L + n * j, &neg_mins[j], Laux, rmin, rdelta,
                                     nstep, use_mad);
}

void fit_symmetric_subblocks(int count, int n, int nmax, const float *x, const float *weights, int8_t *L,
                             float *scales) {
    int j = 0;
    if (ggml_fit::x8_available())
        for (; j + 8 <= count; j += 8)
            ggml_fit::symmetric_x8(n, nmax, x + n * j, n, weights ? weights + n * j : nullptr, n, L + n * j, n,
                                   scales + j);
    for (; j < count; ++j)
        scales[j] = ggml_fit::symmetric(n, nmax, x + n * j, L + n * j, weights ? weights + n * j : nullptr);
}

// The 6-bit scale and min of sub-block j in Q4_K / Q5_K's 12 packed bytes.
inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// ---- Q2_K: 16 sub-blocks of 16, 2-bit codes, 4-bit scales and mins -----
// layout: scales[16] | qs[64] | d (f16) | dmin (f16)
constexpr size_t kQ2Size = 16 + 64 + 4;

// Codes again from the stored (FP16, 4-bit) scales and mins, then packed:
// four 2-bit codes a byte, weights j, j + 32, j + 64, j + 96 of each half.
void finish_q2_k(uint8_t *dst, const float *x, uint8_t *L) {
    const uint8_t *sc = dst;
    uint8_t *qs = dst + 16;
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = get_half(dst + 80) * (sc[j] & 0xF);
        if (!d) continue;
        const float dm = get_half(dst + 82) * (sc[j] >> 4);
        for (int i = 0; i < 16; ++i)
            L[16 * j + i] = static_cast<uint8_t>(std::max(0, std::min(3, nearest((x[16 * j + i] + dm) / d))));
    }
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] =
                static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

void quantize_q2_k(uint8_t *dst, const float *x, size_t blocks) {
    uint8_t L[QK_K];
    float weights[QK_K], mins[QK_K / 16], scales[QK_K / 16];
    const float q4scale = 15.0f;
    for (size_t b = 0; b < blocks; ++b, x += QK_K, dst += kQ2Size) {
        uint8_t *sc = dst;
        float max_scale = 0, max_min = 0;
        for (int l = 0; l < QK_K; ++l) weights[l] = std::fabs(x[l]);
        fit_affine_subblocks(QK_K / 16, 16, 3, x, weights, L, scales, mins, -0.5f, 0.1f, 15, true);
        for (int j = 0; j < QK_K / 16; ++j) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) sc[j] = static_cast<uint8_t>(nearest(iscale * scales[j]));
            put_half(dst + 80, max_scale / q4scale);
        } else {
            std::memset(sc, 0, 16);
            put_half(dst + 80, 0.0f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; ++j) sc[j] = static_cast<uint8_t>(sc[j] | (nearest(iscale * mins[j]) << 4));
            put_half(dst + 82, max_min / q4scale);
        } else {
            put_half(dst + 82, 0.0f);
        }
        finish_q2_k(dst, x, L);
    }
}

void quantize_q2_k_importance(uint8_t *dst, const float *x, size_t n_per_row, const float *importance) {
    uint8_t L[QK_K], Ls[QK_K / 16], Lm[QK_K / 16];
    float weights[QK_K], mins[QK_K / 16], scales[QK_K / 16], sw[QK_K / 16];
    for (size_t b = 0; b < n_per_row / QK_K; ++b, x += QK_K, dst += kQ2Size) {
        const float *qw_block = importance + QK_K * b;
        float sumx2 = 0;
        for (int j = 0; j < QK_K; ++j) sumx2 += x[j] * x[j];
        const float sigma2 = sumx2 / QK_K;
        for (int j = 0; j < QK_K / 16; ++j) {
            const float *qw = qw_block + 16 * j;
            float *w = weights + 16 * j;
            for (int l = 0; l < 16; ++l) w[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            sw[j] = 0;
            for (int l = 0; l < 16; ++l) sw[j] += w[l];
        }
        fit_affine_subblocks(QK_K / 16, 16, 3, x, weights, L, scales, mins, -0.9f, 0.05f, 36, false);
        put_half(dst + 80, ggml_fit::positive(QK_K / 16, 15, scales, Ls, sw));
        put_half(dst + 82, ggml_fit::positive(QK_K / 16, 15, mins, Lm, sw));
        for (int j = 0; j < QK_K / 16; ++j) dst[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
        finish_q2_k(dst, x, L);
    }
}

void dequantize_q2_k(float *y, const uint8_t *src, size_t blocks) {
    for (size_t b = 0; b < blocks; ++b, src += kQ2Size) {
        const uint8_t *sc = src, *q = src + 16;
        const float d = get_half(src + 80), min = get_half(src + 82);
        int is = 0;
        for (int n = 0; n < QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; ++half) {
                    const uint8_t s = sc[is++];
                    const float dl = d * (s & 0xF), ml = min * (s >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
                }
    }
}

// ---- Q3_K: 16 sub-blocks of 16, 3-bit codes, 6-bit signed scales ------
// layout: hmask[32] | qs[64] | scales[12] | d (f16)
constexpr size_t kQ3Size = 32 + 64 + 12 + 2;

// Scale j (6 bits) of Q3_K's packed 12 bytes, as a signed value.
inline int q3_scale(const uint8_t *s, int j) {
    const int low = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
    return (low | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

// Puts the 6-bit scale code l (0..63) of sub-block j into Q3_K's 12 scale bytes.
inline void put_q3_scale(uint8_t *sc, int j, int l) {
    if (j < 8)
        sc[j] = static_cast<uint8_t>(l & 0xF);
    else
        sc[j - 8] = static_cast<uint8_t>(sc[j - 8] | ((l & 0xF) << 4));
    l >>= 4;
    sc[j % 4 + 8] = static_cast<uint8_t>(sc[j % 4 + 8] | (l << (2 * (j / 4))));
}

// Codes again from the stored scales, then packed: the low two bits four to a
// byte, the high bit of weight j at bit (j / 32) of hmask[j % 32].
void finish_q3_k(uint8_t *dst, const float *x, int8_t *L) {
    uint8_t *hmask = dst, *qs = dst + 32;
    const uint8_t *sc = dst + 96;
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = get_half(dst + 108) * static_cast<int8_t>(q3_scale(sc, j));
        if (!d) continue;
        for (int i = 0; i < 16; ++i)
            L[16 * j + i] = static_cast<int8_t>(std::max(-4, std::min(3, nearest(x[16 * j + i] / d))) + 4);
    }
    std::memset(hmask, 0, 32);
    for (int j = 0; j < QK_K; ++j)
        if (L[j] > 3) {
            hmask[j % 32] = static_cast<uint8_t>(hmask[j % 32] | (1 << (j / 32)));
            L[j] = static_cast<int8_t>(L[j] - 4);
        }
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] =
                static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

void quantize_q3_k(uint8_t *dst, const float *x, size_t blocks) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (size_t b = 0; b < blocks; ++b, x += QK_K, dst += kQ3Size) {
        uint8_t *sc = dst + 96;
        float max_scale = 0, amax = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            scales[j] = ggml_fit::symmetric_refined(16, 4, x + 16 * j, L + 16 * j);
            const float a = std::fabs(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        std::memset(sc, 0, 12);
        if (max_scale) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) {
                const int8_t l = static_cast<int8_t>(nearest(iscale * scales[j]));
                put_q3_scale(sc, j, std::max<int>(-32, std::min<int>(31, l)) + 32);
            }
            put_half(dst + 108, 1 / iscale);
        } else {
            put_half(dst + 108, 0.0f);
        }
        finish_q3_k(dst, x, L);
    }
}

void quantize_q3_k_importance(uint8_t *dst, const float *x, size_t n_per_row, const float *importance) {
    int8_t L[QK_K], Ls[QK_K / 16];
    float scales[QK_K / 16], weights[QK_K], sw[QK_K / 16];
    for (size_t b = 0; b < n_per_row / QK_K; ++b, x += QK_K, dst += kQ3Size) {
        float sumx2 = 0;
        for (int j = 0; j < QK_K; ++j) sumx2 += x[j] * x[j];
        const float sigma2 = 2 * sumx2 / QK_K;
        for (int j = 0; j < QK_K / 16; ++j) {
            const float *qw = importance + QK_K * b + 16 * j;
            float *w = weights + 16 * j;
            for (int l = 0; l < 16; ++l) w[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 16; ++l) sumw += w[l];
            sw[j] = sumw;
        }
        fit_symmetric_subblocks(QK_K / 16, 16, 4, x, weights, L, scales);
        uint8_t *sc = dst + 96;
        std::memset(sc, 0, 12);
        const float d_block = ggml_fit::symmetric(QK_K / 16, 32, scales, Ls, sw);
        for (int j = 0; j < QK_K / 16; ++j) put_q3_scale(sc, j, Ls[j]);
        put_half(dst + 108, d_block);
        finish_q3_k(dst, x, L);
    }
}

void dequantize_q3_k(float *y, const uint8_t *src, size_t blocks) {
    for (size_t b = 0; b < blocks; ++b, src += kQ3Size) {
        const uint8_t *hm = src, *q = src + 32, *sc = src + 96;
        const float d_all = get_half(src + 108);
        int is = 0;
        uint8_t m = 1;
        for (int n = 0; n < QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1))
                for (int half = 0; half < 2; ++half) {
                    const float dl = d_all * q3_scale(sc, is++);
                    for (int l = 0; l < 16; ++l) {
                        const int k = l + 16 * half;
                        *y++ = dl * (((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
                    }
                }
    }
}

// ---- Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit scales and mins ------------
// Q4_K layout: d | dmin | scales[12] | qs[128];  Q5_K: d | dmin | scales[12] | qh[32] | qs[128]
constexpr size_t kQ4Size = 4 + 12 + 128;
constexpr size_t kQ5Size = 4 + 12 + 32 + 128;

// Packs the sub-blocks' 6-bit scale and min codes into the 12 scale bytes, stores
// d and dmin, and takes the codes L again from the stored values.
void finish_k_affine(const float *x, int nmax, const uint8_t *ls, const uint8_t *lm, float d_all, float dmin_all,
                     uint8_t *head, uint8_t *L) {
    uint8_t *sc = head + 4;
    for (int j = 0; j < QK_K / 32; ++j) {
        if (j < 4) {
            sc[j] = ls[j];
            sc[j + 4] = lm[j];
        } else {
            sc[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            sc[j - 4] = static_cast<uint8_t>(sc[j - 4] | ((ls[j] >> 4) << 6));
            sc[j] = static_cast<uint8_t>(sc[j] | ((lm[j] >> 4) << 6));
        }
    }
    put_half(head, d_all);
    put_half(head + 2, dmin_all);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t s, m;
        scale_min_k4(j, sc, &s, &m);
        const float d = get_half(head) * s;
        if (!d) continue;
        const float dm = get_half(head + 2) * m;
        for (int i = 0; i < 32; ++i)
            L[32 * j + i] = static_cast<uint8_t>(std::max(0, std::min(nmax, nearest((x[32 * j + i] + dm) / d))));
    }
}

// Q4_K's codes: two 4-bit codes a byte, weights j and j + 32 of each 64.
void pack_q4_k(uint8_t *dst, const uint8_t *L) {
    uint8_t *q = dst + 16;
    for (int j = 0; j < QK_K; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
}

// Q5_K's codes: the low four bits as Q4_K's, the fifth bits in qh[32].
void pack_q5_k(uint8_t *dst, const uint8_t *L) {
    uint8_t *qh = dst + 16, *ql = dst + 48;
    std::memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64, ql += 32, m1 = static_cast<uint8_t>(m1 << 2), m2 = static_cast<uint8_t>(m2 << 2))
        for (int j = 0; j < 32; ++j) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] = static_cast<uint8_t>(qh[j] | m1);
            }
            if (l2 > 15) {
                l2 -= 16;
                qh[j] = static_cast<uint8_t>(qh[j] | m2);
            }
            ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
        }
}

// The codes L (0..nmax) of one Q4_K/Q5_K super-block; fills d, dmin, scales.
void quantize_k_affine(const float *x, int nmax, float rmin, int nstep, uint8_t *head, uint8_t *L) {
    float weights[QK_K], mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[32 * j + l] = av_x + std::fabs(x[32 * j + l]);
    }
    fit_affine_subblocks(QK_K / 32, 32, nmax, x, weights, L, scales, mins, rmin, 0.1f, nstep, false);
    for (int j = 0; j < QK_K / 32; ++j) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t ls[QK_K / 32], lm[QK_K / 32];
    for (int j = 0; j < QK_K / 32; ++j) {
        ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest(inv_scale * scales[j])));
        lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest(inv_min * mins[j])));
    }
    finish_k_affine(x, nmax, ls, lm, max_scale / 63.0f, max_min / 63.0f, head, L);
}

// The importance-weighted codes L (0..nmax) of one Q4_K/Q5_K super-block; fills d, dmin, scales.
void quantize_k_affine_importance(const float *x, const float *importance, int nmax, uint8_t *head, uint8_t *L) {
    uint8_t ls[QK_K / 32], lm[QK_K / 32];
    float weights[QK_K], mins[QK_K / 32], scales[QK_K / 32], sw[QK_K / 32];
    float sum_x2 = 0;
    for (int l = 0; l < QK_K; ++l) sum_x2 += x[l] * x[l];
    const float sigma2 = 2 * sum_x2 / QK_K;
    for (int j = 0; j < QK_K / 32; ++j) {
        const float *qw = importance + 32 * j;
        float *w = weights + 32 * j;
        for (int l = 0; l < 32; ++l) w[l] = qw[l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += w[l];
        sw[j] = sumw;
    }
    fit_affine_subblocks(QK_K / 32, 32, nmax, x, weights, L, scales, mins, -0.9f, 0.05f, 36, false);
    const float d_block = ggml_fit::positive(QK_K / 32, 63, scales, ls, sw);
    const float m_block = ggml_fit::positive(QK_K / 32, 63, mins, lm, sw);
    finish_k_affine(x, nmax, ls, lm, d_block, m_block, head, L);
}

void quantize_q4_k_importance(uint8_t *dst, const float *x, size_t n_per_row, const float *importance) {
    uint8_t L[QK_K];
    for (size_t b = 0; b < n_per_row / QK_K; ++b, x += QK_K, dst += kQ4Size) {
        quantize_k_affine_importance(x, importance + QK_K * b, 15, dst, L);
        pack_q4_k(dst, L);
    }
}

void quantize_q5_k_importance(uint8_t *dst, const float *x, size_t n_per_row, const float *importance) {
    uint8_t L[QK_K];
    for (size_t b = 0; b < n_per_row / QK_K; ++b, x += QK_K, dst += kQ5Size) {
        quantize_k_affine_importance(x, importance + QK_K * b, 31, dst, L);
        pack_q5_k(dst, L);
    }
}

void quantize_q4_k(uint8_t *dst, const float *x, size_t blocks) {
    uint8_t L[QK_K];
    for (size_t b = 0; b < blocks; ++b, x += QK_K, dst += kQ4Size) {
        quantize_k_affine(x, 15, -1.0f, 20, dst, L);
        pack_q4_k(dst, L);
    }
}

void quantize_q5_k(uint8_t *dst, const float *x, size_t blocks) {
    uint8_t L[QK_K];
    for (size_t b = 0; b < blocks; ++b, x += QK_K, dst += kQ5Size) {
        quantize_k_affine(x, 31, -0.5f, 15, dst, L);
        pack_q5_k(dst, L);
    }
}

void dequantize_k_affine(float *y, const uint8_t *src, size_t blocks, bool five_bit) {
    const size_t size = five_bit ? kQ5Size : kQ4Size;
    for (size_t b = 0; b < blocks; ++b, src += size) {
        const float d = get_half(src), min = get_half(src + 2);
        const uint8_t *sc = src + 4, *qh = src + 16, *q = src + (five_bit ? 48 : 16);
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < QK_K; j += 64, q += 32, is += 2, u1 = static_cast<uint8_t>(u1 << 2),
                 u2 = static_cast<uint8_t>(u2 << 2)) {
            uint8_t s, m;
            scale_min_k4(is, sc, &s, &m);
            const float d1 = d * s, m1 = min * m;
            scale_min_k4(is + 1, sc, &s, &m);
            const float d2 = d * s, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((q[l] & 0xF) + (five_bit && (qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((q[l] >> 4) + (five_bit && (qh[l] & u2) ? 16 : 0)) - m2;
        }
    }
}

void dequantize_q4_k(float *y, const uint8_t *src, size_t blocks) { dequantize_k_affine(y, src, blocks, false); }
void dequantize_q5_k(float *y, const uint8_t *src, size_t blocks) { dequantize_k_affine(y, src, blocks, true); }

// ---- Q6_K: 16 sub-blocks of 16, 6-bit codes, 8-bit signed scales -------
// layout: ql[128] | qh[64] | scales[16] (int8) | d (f16)
constexpr size_t kQ6Size = 128 + 64 + 16 + 2;

// The two paths differ only in the sub-block fit's weights: x^2 (reference)
// or the importance itself (ggml does not scale it by the row's spread here).
void quantize_q6_k_blocks(uint8_t *dst, const float *x, size_t blocks, const float *importance) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (size_t b = 0; b < blocks; ++b, x += QK_K, dst += kQ6Size) {
        float max_scale = 0, max_abs = 0;
        fit_symmetric_subblocks(QK_K / 16, 16, 32, x, importance ? importance + QK_K * b : nullptr, L, scales);
        for (int j = 0; j < QK_K / 16; ++j) {
            const float a = std::fabs(scales[j]);
            if (a > max_abs) {
                max_abs = a;
                max_scale = scales[j];
            }
        }
        if (max_abs < kGroupMaxEps) {
            std::memset(dst, 0, kQ6Size);
            continue;
        }
        auto *sc = reinterpret_cast<int8_t *>(dst + 192);
        const float iscale = -128.0f / max_scale;
        put_half(dst + 208, 1 / iscale);
        for (int j = 0; j < QK_K / 16; ++j) sc[j] = static_cast<int8_t>(std::min(127, nearest(iscale * scales[j])));
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = get_half(dst + 208) * sc[j];
            if (!d) continue;
            for (int i = 0; i < 16; ++i)
                L[16 * j + i] = static_cast<int8_t>(std::max(-32, std::min(31, nearest(x[16 * j + i] / d))) + 32);
        }
        uint8_t *ql = dst, *qh = dst + 128;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; ++l) {
                const int a = L[j + l], b2 = L[j + l + 32], c = L[j + l + 64], e = L[j + l + 96];
                ql[l] = static_cast<uint8_t>((a & 0xF) | ((c & 0xF) << 4));
                ql[l + 32] = static_cast<uint8_t>((b2 & 0xF) | ((e & 0xF) << 4));
                qh[l] = static_cast<uint8_t>((a >> 4) | ((b2 >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6));
            }
    }
}

void quantize_q6_k(uint8_t *dst, const float *x, size_t blocks) { quantize_q6_k_blocks(dst, x, blocks, nullptr); }

void quantize_q6_k_importance(uint8_t *dst, const float *x, size_t n_per_row, const float *importance) {
    quantize_q6_k_blocks(dst, x, n_per_row / QK_K, importance);
}

void dequantize_q6_k(float *y, const uint8_t *src, size_t blocks) {
    for (size_t b = 0; b < blocks; ++b, src += kQ6Size) {
        const float d = get_half(src + 208);
        const uint8_t *ql = src, *qh = src + 128;
        const auto *sc = reinterpret_cast<const int8_t *>(src + 192);
        for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
    }
}

const GgmlTypeTraits kKTraits[] = {
    {KTQ_GGML_Q2_K, "Q2_K", QK_K, kQ2Size, quantize_q2_k, dequantize_q2_k, quantize_q2_k_importance},
    {KTQ_GGML_Q3_K, "Q3_K", QK_K, kQ3Size, quantize_q3_k, dequantize_q3_k, quantize_q3_k_importance},
    {KTQ_GGML_Q4_K, "Q4_K", QK_K, kQ4Size, quantize_q4_k, dequantize_q4_k, quantize_q4_k_importance},
    {KTQ_GGML_Q5_K, "Q5_K", QK_K, kQ5Size, quantize_q5_k, dequantize_q5_k, quantize_q5_k_importance},
    {KTQ_GGML_Q6_K, "Q6_K", QK_K, kQ6Size, quantize_q6_k, dequantize_q6_k, quantize_q6_k_importance},
};

}  // namespace

const GgmlTypeTraits *ggml_kquant_traits(ktq_ggml_type type) {
    for (const auto &t : kKTraits)
        if (t.type == type) return &t;
    return nullptr;
}

}  // namespace ktq
