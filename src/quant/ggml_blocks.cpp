#include "quant/ggml_blocks.h"

#include <algorithm>
#include <cmath>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif
#include <cstring>
#include <vector>

#include "quant/ggml_fit.h"
#include "quant/ggml_kquants.h"
#include "reading/dtype.h"

namespace ktq {

uint16_t f32_to_f16(float f) { return half::f16_bits(f); }

namespace {

constexpr size_t QK = 32;  // weights per block of the legacy types

void put_f16(uint8_t *p, float v) {
    uint16_t h = f32_to_f16(v);
    std::memcpy(p, &h, 2);
}

float get_f16(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
}

// Signed maximum-magnitude value of a block (the first one on ties), as the
// symmetric legacy types scale by it.
float signed_absmax(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (size_t j = 0; j < QK; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

void min_max(const float *x, float *mn, float *mx) {
    *mn = INFINITY;
    *mx = -INFINITY;
    for (size_t j = 0; j < QK; ++j) {
        if (x[j] < *mn) *mn = x[j];
        if (x[j] > *mx) *mx = x[j];
    }
}

// Codes of the two halves of a block share bytes: element j in the low
// nibble, element j + 16 in the high nibble.
void pack_nibbles(uint8_t *qs, const uint8_t *q) {
    for (size_t j = 0; j < QK / 2; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0x0f) | (q[j + QK / 2] << 4));
}

void unpack_nibbles(uint8_t *q, const uint8_t *qs) {
    for (size_t j = 0; j < QK / 2; ++j) {
        q[j] = qs[j] & 0x0f;
        q[j + QK / 2] = qs[j] >> 4;
    }
}

// Bit 4 of each of the 32 five-bit codes, element j at bit j (little endian).
void pack_fifth_bits(uint8_t *qh, const uint8_t *q) {
    uint32_t bits = 0;
    for (size_t j = 0; j < QK; ++j) bits |= static_cast<uint32_t>((q[j] >> 4) & 1u) << j;
    std::memcpy(qh, &bits, 4);
}

void unpack_fifth_bits(uint8_t *q, const uint8_t *qh) {
    uint32_t bits;
    std::memcpy(&bits, qh, 4);
    for (size_t j = 0; j < QK; ++j) q[j] = static_cast<uint8_t>(q[j] | (((bits >> j) & 1u) << 4));
}

uint8_t clamp_code(float v, int hi) {
    int c = static_cast<int>(v);  // truncation toward zero, as ggml's (int8_t) cast
    return static_cast<uint8_t>(c > hi ? hi : c);
}

// ---- Q8_0: d (f16) + 32 x int8, d = amax / 127, codes rounded half away from zero.
#if defined(__x86_64__) || defined(_M_X64)
// Eight codes at a time: the same product x * id, and round-half-away-from-zero
// done exactly (trunc, then one step away from zero when the dropped fraction,
// which v - trunc(v) gives exactly, is at least one half); amax by max, which
// is exact in any order. Same bytes as the scalar loop (golden tests run both).
__attribute__((target("avx2"))) void quantize_q8_0_avx2(uint8_t *dst, const float *x, size_t blocks) {
    const __m256 sign_bit = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    for (size_t b = 0; b < blocks; ++b, x += QK, dst += 34) {
        __m256 v[4], amax8 = _mm256_setzero_ps();
        for (int k = 0; k < 4; ++k) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            amax8 = _mm256_max_ps(_mm256_andnot_ps(sign_bit, v[k]), amax8);  // a NaN lane keeps amax, as fmax
        }
        alignas(32) float lanes[8];
        _mm256_store_ps(lanes, amax8);
        float amax = 0.0f;
        for (float l : lanes) amax = std::fmax(amax, l);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        const __m256 idv = _mm256_set1_ps(id);
        alignas(32) int32_t codes[8];
        for (int k = 0; k < 4; ++k) {
            const __m256 p = _mm256_mul_ps(v[k], idv);
            const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 away = _mm256_cmp_ps(_mm256_andnot_ps(sign_bit, _mm256_sub_ps(p, t)), half, _CMP_GE_OQ);
            const __m256 step = _mm256_and_ps(away, _mm256_or_ps(one, _mm256_and_ps(sign_bit, p)));
            _mm256_store_si256(reinterpret_cast<__m256i *>(codes), _mm256_cvttps_epi32(_mm256_add_ps(t, step)));
            for (int j = 0; j < 8; ++j) dst[2 + 8 * k + j] = static_cast<uint8_t>(static_cast<int8_t>(codes[j]));
        }
    }
}
#endif

void quantize_q8_0(uint8_t *dst, const float *x, size_t blocks) {
#if defined(__x86_64__) || defined(_M_X64)
    if (ggml_fit::x8_available()) {
        quantize_q8_0_avx2(dst, x, blocks);
        return;
    }
#endif
    for (size_t b = 0; b < blocks; ++b, x += QK, dst += 34) {
        float amax = 0.0f;
        for (size_t j = 0; j < QK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        for (size_t j = 0; j < QK; ++j) dst[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
    }
}

void dequantize_q8_0(float *y, const uint8_t *src, size_t blocks) {
    for (size_t b = 0; b < blocks; ++b, src += 34, y += QK) {
        const float d = get_f16(src);
        for (size_t j = 0; j < QK; ++j) y[j] = static_cast<float>(static_cast<int8_t>(src[2 + j])) * d;
    }
}

// ---- The four legacy 4/5-bit types share one scheme, with two switches:
//   symmetric (Q4_0, Q5_0): d = max / -2^(bits-1) (max: the value of largest
//     magnitude), code = trunc(x/d + 2^(bits-1) + 0.5), value = (code - 2^(bits-1)) * d;
//   with minimum (Q4_1, Q5_1): d = (max - min) / (2^bits - 1), m = min,
//     code = trunc((x - min)/d + 0.5), value = code * d + m;
// codes capped at 2^bits - 1. Layout: d [, m] (f16), then for 5 bits the
// fifth bits (u32), then the low nibbles.
template <int Bits, bool WithMin>
struct LegacyBlock {
    static constexpr int kMaxCode = (1 << Bits) - 1;
    static constexpr size_t kHeader = WithMin ? 4 : 2;
    static constexpr size_t kHighBits = Bits == 5 ? 4 : 0;
    static constexpr size_t kSize = kHeader + kHighBits + QK / 2;

    static void quantize(uint8_t *dst, const float *x, size_t blocks) {
        uint8_t q[QK];
        for (size_t b = 0; b < blocks; ++b, x += QK, dst += kSize) {
            float d, bias, offset;
            if (WithMin) {
                float mx;
                min_max(x, &bias, &mx);
                d = (mx - bias) / static_cast<float>(kMaxCode);
                offset = 0.5f;
            } else {
                d = signed_absmax(x) / -static_cast<float>(1 << (Bits - 1));
                bias = 0.0f;
                offset = static_cast<float>(1 << (Bits - 1)) + 0.5f;
            }
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            put_f16(dst, d);
            if (WithMin) put_f16(dst + 2, bias);
            for (size_t j = 0; j < QK; ++j) q[j] = clamp_code((WithMin ? x[j] - bias : x[j]) * id + offset, kMaxCode);
            if (kHighBits) pack_fifth_bits(dst + kHeader, q);
            pack_nibbles(dst + kHeader + kHighBits, q);
        }
    }

    // llama-quantize's path with an imatrix: each block's scale (and minimum) fitted by least squares
    // weighted by importance x sqrt(spread of the row + x^2), as ggml's quantize_row_q*_impl.
    // Blocks are fitted eight at a time on AVX2 (ggml_fit::*_x8: the same bits).
    static void quantize_importance(uint8_t *dst, const float *x, size_t n_per_row, const float *importance) {
        float sum_x2 = 0;
        for (size_t j = 0; j < n_per_row; ++j) sum_x2 += x[j] * x[j];
        const float sigma2 = sum_x2 / static_cast<float>(n_per_row);
        constexpr size_t kBatch = 8;
        float weight[kBatch * QK], d[kBatch], neg_min[kBatch];
        uint8_t q[kBatch * QK], aux[QK];
        const size_t blocks = n_per_row / QK;
        for (size_t b0 = 0; b0 < blocks; b0 += kBatch, x += kBatch * QK, importance += kBatch * QK) {
            const size_t count = std::min(kBatch, blocks - b0);
            for (size_t j = 0; j < count * QK; ++j) weight[j] = importance[j] * std::sqrt(sigma2 + x[j] * x[j]);
            if (count == kBatch && ggml_fit::x8_available()) {
                if (WithMin)
                    ggml_fit::affine_x8(QK, kMaxCode, x, QK, weight, QK, q, QK, d, neg_min, -0.9f, 0.05f, 36, false);
                else
                    ggml_fit::symmetric_x8(QK, 1 << (Bits - 1), x, QK, weight, QK, reinterpret_cast<int8_t *>(q), QK, d);
            } else {
                for (size_t k = 0; k < count; ++k) {
                    if (WithMin)
                        d[k] = ggml_fit::affine(QK, kMaxCode, x + k * QK, weight + k * QK, q + k * QK, &neg_min[k], aux,
                                                -0.9f, 0.05f, 36, false);
                    else
                        d[k] = ggml_fit::symmetric(QK, 1 << (Bits - 1), x + k * QK,
                                                   reinterpret_cast<int8_t *>(q + k * QK), weight + k * QK);
                }
            }
            for (size_t k = 0; k < count; ++k, dst += kSize) {
                put_f16(dst, d[k]);
                if (WithMin) put_f16(dst + 2, -neg_min[k]);
                if (kHighBits) pack_fifth_bits(dst + kHeader, q + k * QK);
                pack_nibbles(dst + kHeader + kHighBits, q + k * QK);
            }
        }
    }

    static void dequantize(float *y, const uint8_t *src, size_t blocks) {
        uint8_t q[QK];
        for (size_t b = 0; b < blocks; ++b, src += kSize, y += QK) {
            const float d = get_f16(src);
            unpack_nibbles(q, src + kHeader + kHighBits);
            if (kHighBits) unpack_fifth_bits(q, src + kHeader);
            if (WithMin) {
                const float m = get_f16(src + 2);
                for (size_t j = 0; j < QK; ++j) y[j] = static_cast<float>(q[j]) * d + m;
            } else {
                for (size_t j = 0; j < QK; ++j) y[j] = static_cast<float>(static_cast<int>(q[j]) - (1 << (Bits - 1))) * d;
            }
        }
    }
};

using Q4_0 = LegacyBlock<4, false>;
using Q4_1 = LegacyBlock<4, true>;
using Q5_0 = LegacyBlock<5, false>;
using Q5_1 = LegacyBlock<5, true>;

// ---- Plain types, one weight per "block".
void quantize_f32(uint8_t *dst, const float *x, size_t n) { std::memcpy(dst, x, n * 4); }
void dequantize_f32(float *y, const uint8_t *src, size_t n) { std::memcpy(y, src, n * 4); }
void quantize_f16(uint8_t *dst, const float *x, size_t n) {
    for (size_t i = 0; i < n; ++i) put_f16(dst + 2 * i, x[i]);
}
void dequantize_f16(float *y, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = get_f16(src + 2 * i);
}
void quantize_bf16(uint8_t *dst, const float *x, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
    }
}
void dequantize_bf16(float *y, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        y[i] = bf16_to_f32(h);
    }
}

const GgmlTypeTraits kTraits[] = {
    {KTQ_GGML_F32, "F32", 1, 4, quantize_f32, dequantize_f32},
    {KTQ_GGML_F16, "F16", 1, 2, quantize_f16, dequantize_f16},
    {KTQ_GGML_BF16, "BF16", 1, 2, quantize_bf16, dequantize_bf16},
    {KTQ_GGML_Q4_0, "Q4_0", QK, Q4_0::kSize, Q4_0::quantize, Q4_0::dequantize, Q4_0::quantize_importance},
    {KTQ_GGML_Q4_1, "Q4_1", QK, Q4_1::kSize, Q4_1::quantize, Q4_1::dequantize, Q4_1::quantize_importance},
    {KTQ_GGML_Q5_0, "Q5_0", QK, Q5_0::kSize, Q5_0::quantize, Q5_0::dequantize, Q5_0::quantize_importance},
    {KTQ_GGML_Q5_1, "Q5_1", QK, Q5_1::kSize, Q5_1::quantize, Q5_1::dequantize, Q5_1::quantize_importance},
    {KTQ_GGML_Q8_0, "Q8_0", QK, 34, quantize_q8_0, dequantize_q8_0},
};

}  // namespace

const GgmlTypeTraits *ggml_traits(ktq_ggml_type type) {
    for (const auto &t : kTraits)
        if (t.type == type) return &t;
    return ggml_kquant_traits(type);
}

void ggml_round_trip(const GgmlTypeTraits &type, float *v, size_t n) {
    const size_t blocks = n / type.block_size;
    std::vector<uint8_t> packed(blocks * type.type_size);
    type.quantize(packed.data(), v, blocks);
    type.dequantize(v, packed.data(), blocks);
}

}  // namespace ktq
