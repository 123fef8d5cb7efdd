#include "quant/ggml_blocks.h"

#include <cmath>
#include <cstring>

#include "reading/dtype.h"

namespace ktq {

uint16_t f32_to_f16(float f) {
    const uint32_t x = f32_to_bits(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u);  // NaN stays NaN, Inf
    if (ax >= 0x47800000u) return sign | 0x7c00u;                                  // >= 65536: infinity
    if (ax < 0x38800000u) {                                                        // below 2^-14: subnormal
        // The value in units of 2^-24 is exact in float; round it to an integer, ties to even.
        const float units = bits_to_f32(ax) * 16777216.0f;
        return sign | static_cast<uint16_t>(std::nearbyint(units));
    }
    uint32_t h = ((((ax >> 23) - 127 + 15) << 10) | ((ax & 0x7fffffu) >> 13));
    const uint32_t rest = ax & 0x1fffu;  // the 13 bits dropped
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry may reach the exponent: correct
    return sign | static_cast<uint16_t>(h);
}

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
void quantize_q8_0(uint8_t *dst, const float *x, size_t blocks) {
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

// ---- Q4_0: d (f16) + 16 bytes of nibbles, d = max / -8, code = trunc(x/d + 8.5) <= 15.
void quantize_q4_0(uint8_t *dst, const float *x, size_t blocks) {
    uint8_t q[QK];
    for (size_t b = 0; b < blocks; ++b, x += QK, dst += 18) {
        const float d = signed_absmax(x) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        for (size_t j = 0; j < QK; ++j) q[j] = clamp_code(x[j] * id + 8.5f, 15);
        pack_nibbles(dst + 2, q);
    }
}

void dequantize_q4_0(float *y, const uint8_t *src, size_t blocks) {
    uint8_t q[QK];
    for (size_t b = 0; b < blocks; ++b, src += 18, y += QK) {
        const float d = get_f16(src);
        unpack_nibbles(q, src + 2);
        for (size_t j = 0; j < QK; ++j) y[j] = static_cast<float>(static_cast<int>(q[j]) - 8) * d;
    }
}

// ---- Q4_1: d, m (f16) + nibbles, d = (max - min) / 15, code = trunc((x - min)/d + 0.5) <= 15.
void quantize_q4_1(uint8_t *dst, const float *x, size_t blocks) {
    uint8_t q[QK];
    for (size_t b = 0; b < blocks; ++b, x += QK, dst += 20) {
        float mn, mx;
        min_max(x, &mn, &mx);
        const float d = (mx - mn) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        put_f16(dst + 2, mn);
        for (size_t j = 0; j < QK; ++j) q[j] = clamp_code((x[j] - mn) * id + 0.5f, 15);
        pack_nibbles(dst + 4, q);
    }
}

void dequantize_q4_1(float *y, const uint8_t *src, size_t blocks) {
    uint8_t q[QK];
    for (size_t b = 0; b < blocks; ++b, src += 20, y += QK) {
        const float d = get_f16(src), m = get_f16(src + 2);
        unpack_nibbles(q, src + 4);
        for (size_t j = 0; j < QK; ++j) y[j] = static_cast<float>(q[j]) * d + m;
    }
}

// ---- Q5_0: d (f16) + 4 bytes of fifth bits + nibbles, d = max / -16, code = trunc(x/d + 16.5) <= 31.
void quantize_q5_0(uint8_t *dst, const float *x, size_t blocks) {
    uint8_t q[QK];
    for (size_t b = 0; b < blocks; ++b, x += QK, dst += 22) {
        const float d = signed_absmax(x) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        for (size_t j = 0; j < QK; ++j) q[j] = clamp_code(x[j] * id + 16.5f, 31);
        pack_fifth_bits(dst + 2, q);
        pack_nibbles(dst + 6, q);
    }
}

void dequantize_q5_0(float *y, const uint8_t *src, size_t blocks) {
    uint8_t q[QK];
    for (size_t b = 0; b < blocks; ++b, src += 22, y += QK) {
        const float d = get_f16(src);
        unpack_nibbles(q, src + 6);
        unpack_fifth_bits(q, src + 2);
        for (size_t j = 0; j < QK; ++j) y[j] = static_cast<float>(static_cast<int>(q[j]) - 16) * d;
    }
}

// ---- Q5_1: d, m (f16) + fifth bits + nibbles, d = (max - min) / 31.
void quantize_q5_1(uint8_t *dst, const float *x, size_t blocks) {
    uint8_t q[QK];
    for (size_t b = 0; b < blocks; ++b, x += QK, dst += 24) {
        float mn, mx;
        min_max(x, &mn, &mx);
        const float d = (mx - mn) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        put_f16(dst + 2, mn);
        for (size_t j = 0; j < QK; ++j) q[j] = clamp_code((x[j] - mn) * id + 0.5f, 31);
        pack_fifth_bits(dst + 4, q);
        pack_nibbles(dst + 8, q);
    }
}

void dequantize_q5_1(float *y, const uint8_t *src, size_t blocks) {
    uint8_t q[QK];
    for (size_t b = 0; b < blocks; ++b, src += 24, y += QK) {
        const float d = get_f16(src), m = get_f16(src + 2);
        unpack_nibbles(q, src + 8);
        unpack_fifth_bits(q, src + 4);
        for (size_t j = 0; j < QK; ++j) y[j] = static_cast<float>(q[j]) * d + m;
    }
}

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
    {KTQ_GGML_Q4_0, "Q4_0", QK, 18, quantize_q4_0, dequantize_q4_0},
    {KTQ_GGML_Q4_1, "Q4_1", QK, 20, quantize_q4_1, dequantize_q4_1},
    {KTQ_GGML_Q5_0, "Q5_0", QK, 22, quantize_q5_0, dequantize_q5_0},
    {KTQ_GGML_Q5_1, "Q5_1", QK, 24, quantize_q5_1, dequantize_q5_1},
    {KTQ_GGML_Q8_0, "Q8_0", QK, 34, quantize_q8_0, dequantize_q8_0},
};

}  // namespace

const GgmlTypeTraits *ggml_traits(ktq_ggml_type type) {
    for (const auto &t : kTraits)
        if (t.type == type) return &t;
    return nullptr;
}

}  // namespace ktq
