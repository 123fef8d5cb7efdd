#include "reading/dtype.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

namespace ktq {

namespace {

struct DtypeRow {
    ktq_dtype dtype;
    const char *name;
    size_t size;
    bool is_float;
};

constexpr DtypeRow kDtypes[] = {
    {KTQ_DTYPE_F32, "F32", 4, true},      {KTQ_DTYPE_F16, "F16", 2, true},
    {KTQ_DTYPE_BF16, "BF16", 2, true},    {KTQ_DTYPE_F8_E4M3, "F8_E4M3", 1, true},
    {KTQ_DTYPE_F8_E5M2, "F8_E5M2", 1, true}, {KTQ_DTYPE_F64, "F64", 8, true},
    {KTQ_DTYPE_I8, "I8", 1, false},       {KTQ_DTYPE_U8, "U8", 1, false},
    {KTQ_DTYPE_I16, "I16", 2, false},     {KTQ_DTYPE_I32, "I32", 4, false},
    {KTQ_DTYPE_I64, "I64", 8, false},     {KTQ_DTYPE_BOOL, "BOOL", 1, false},
};

const DtypeRow *row_of(ktq_dtype dtype) {
    for (const auto &row : kDtypes)
        if (row.dtype == dtype) return &row;
    return nullptr;
}

// value = (-1)^s * 2^(e - bias) * (1 + m / 2^mbits), subnormal when e == 0.
float decode_minifloat(unsigned bits, int ebits, int mbits, int bias) {
    unsigned sign = bits >> (ebits + mbits);
    unsigned e = (bits >> mbits) & ((1u << ebits) - 1);
    unsigned m = bits & ((1u << mbits) - 1);
    float mag;
    if (e == 0)
        mag = std::ldexp(static_cast<float>(m), 1 - bias - mbits);
    else
        mag = std::ldexp(static_cast<float>(m + (1u << mbits)), static_cast<int>(e) - bias - mbits);
    return sign ? -mag : mag;
}

std::array<float, 256> make_e4m3() {
    std::array<float, 256> t{};
    for (unsigned i = 0; i < 256; ++i) {
        if ((i & 0x7f) == 0x7f)
            t[i] = std::numeric_limits<float>::quiet_NaN();
        else
            t[i] = decode_minifloat(i, 4, 3, 7);
    }
    return t;
}

std::array<float, 256> make_e5m2() {
    std::array<float, 256> t{};
    for (unsigned i = 0; i < 256; ++i) {
        unsigned e = (i >> 2) & 0x1f, m = i & 3;
        if (e == 0x1f)
            t[i] = m ? std::numeric_limits<float>::quiet_NaN()
                     : ((i & 0x80) ? -std::numeric_limits<float>::infinity()
                                   : std::numeric_limits<float>::infinity());
        else
            t[i] = decode_minifloat(i, 5, 2, 15);
    }
    return t;
}

std::vector<float> make_f16() {
    std::vector<float> t(65536);
    for (unsigned i = 0; i < 65536; ++i) t[i] = half::from_f16(static_cast<uint16_t>(i));  // a table: the hot path
    return t;
}

const std::array<float, 256> kE4M3 = make_e4m3();
const std::array<float, 256> kE5M2 = make_e5m2();
const std::vector<float> kF16 = make_f16();

// Tensor data can sit at any byte offset (safetensors does not require the
// header to be padded), so elements are loaded with memcpy, which compiles to
// a plain unaligned load.
template <typename T>
inline T load(const uint8_t *p, size_t i) {
    T v;
    std::memcpy(&v, p + i * sizeof(T), sizeof(T));
    return v;
}

template <typename Out, typename Convert>
void convert_loop(Out *dst, const void *src, ktq_dtype from, size_t count, Convert &&out_of_f32) {
    const uint8_t *s = static_cast<const uint8_t *>(src);
    switch (from) {
    case KTQ_DTYPE_F32:
        for (size_t i = 0; i < count; ++i) dst[i] = out_of_f32(load<float>(s, i));
        break;
    case KTQ_DTYPE_F64:
        for (size_t i = 0; i < count; ++i) dst[i] = out_of_f32(static_cast<float>(load<double>(s, i)));
        break;
    case KTQ_DTYPE_F16:
        for (size_t i = 0; i < count; ++i) dst[i] = out_of_f32(kF16[load<uint16_t>(s, i)]);
        break;
    case KTQ_DTYPE_BF16:
        for (size_t i = 0; i < count; ++i) dst[i] = out_of_f32(bf16_to_f32(load<uint16_t>(s, i)));
        break;
    case KTQ_DTYPE_F8_E4M3:
        for (size_t i = 0; i < count; ++i) dst[i] = out_of_f32(kE4M3[s[i]]);
        break;
    case KTQ_DTYPE_F8_E5M2:
        for (size_t i = 0; i < count; ++i) dst[i] = out_of_f32(kE5M2[s[i]]);
        break;
    default:
        break;  // callers check dtype_is_float first
    }
}

}  // namespace

ktq_dtype dtype_from_name(const std::string &name) {
    for (const auto &row : kDtypes)
        if (name == row.name) return row.dtype;
    return KTQ_DTYPE_UNKNOWN;
}

const char *dtype_name(ktq_dtype dtype) {
    const DtypeRow *row = row_of(dtype);
    return row ? row->name : "UNKNOWN";
}

size_t dtype_size(ktq_dtype dtype) {
    const DtypeRow *row = row_of(dtype);
    return row ? row->size : 0;
}

bool dtype_is_float(ktq_dtype dtype) {
    const DtypeRow *row = row_of(dtype);
    return row && row->is_float;
}

float f16_to_f32(uint16_t h) { return kF16[h]; }
float f8e4m3_to_f32(uint8_t v) { return kE4M3[v]; }
float f8e5m2_to_f32(uint8_t v) { return kE5M2[v]; }

void convert_to_f32(float *dst, const void *src, ktq_dtype from, size_t count) {
    convert_loop(dst, src, from, count, [](float v) { return v; });
}

void convert_to_bf16(uint16_t *dst, const void *src, ktq_dtype from, size_t count) {
    if (from == KTQ_DTYPE_BF16) {
        std::memcpy(dst, src, count * 2);
        return;
    }
    convert_loop(dst, src, from, count, [](float v) { return f32_to_bf16(v); });
}

size_t count_non_finite(const void *data, ktq_dtype dtype, size_t count, size_t *first) {
    size_t n = 0;
    auto note = [&](size_t i) {
        if (n++ == 0 && first) *first = i;
    };
    if (dtype == KTQ_DTYPE_BF16) {
        const uint16_t *d = static_cast<const uint16_t *>(data);
        // Blocks are checked with a branch-free loop the compiler vectorises;
        // only a block holding a non-finite value is walked element by element.
        constexpr size_t kBlock = 4096;
        for (size_t start = 0; start < count; start += kBlock) {
            const size_t end = std::min(count, start + kBlock);
            unsigned any = 0;
            for (size_t i = start; i < end; ++i) any |= (d[i] & 0x7f80u) == 0x7f80u;
            if (!any) continue;
            for (size_t i = start; i < end; ++i)
                if ((d[i] & 0x7f80u) == 0x7f80u) note(i);
        }
    } else if (dtype == KTQ_DTYPE_F32) {
        const uint32_t *d = static_cast<const uint32_t *>(data);
        for (size_t i = 0; i < count; ++i)
            if ((d[i] & 0x7f800000u) == 0x7f800000u) note(i);
    }
    return n;
}

void dequant_fp8_row(void *dst, ktq_dtype out, const uint8_t *src, ktq_dtype fp8, size_t cols,
                     const float *scales, size_t block_cols) {
    const float *table = fp8 == KTQ_DTYPE_F8_E5M2 ? kE5M2.data() : kE4M3.data();
    // Block by block, so the scale is a loop constant and the inner loop is
    // a lookup, a multiply and (for BF16) a rounding.
    for (size_t start = 0, b = 0; start < cols; start += block_cols, ++b) {
        const size_t end = std::min(cols, start + block_cols);
        const float s = scales[b];
        if (out == KTQ_DTYPE_F32) {
            float *d = static_cast<float *>(dst);
            for (size_t c = start; c < end; ++c) d[c] = table[src[c]] * s;
        } else {
            uint16_t *d = static_cast<uint16_t *>(dst);
            for (size_t c = start; c < end; ++c) d[c] = f32_to_bf16(table[src[c]] * s);
        }
    }
}

}  // namespace ktq
