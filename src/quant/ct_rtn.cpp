#include "quant/ct_rtn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "quant/ct_rtn_math.h"
#include "reading/dtype.h"

namespace ktq::ct {

namespace {

int dtype_code(ktq_dtype d) {
    return d == KTQ_DTYPE_BF16 ? math::kBF16 : d == KTQ_DTYPE_F16 ? math::kF16 : math::kF32;
}

uint64_t group_len(const Scheme &s, uint64_t cols) { return s.group_size > 0 ? static_cast<uint64_t>(s.group_size) : cols; }

void store_scale(ktq_dtype d, void *scales, uint64_t i, float v) {
    if (d == KTQ_DTYPE_F32)
        static_cast<float *>(scales)[i] = v;
    else
        static_cast<uint16_t *>(scales)[i] = d == KTQ_DTYPE_BF16 ? math::bf16_bits(v) : math::f16_bits(v);
}

float load_scale(ktq_dtype d, const void *scales, uint64_t i) {
    if (d == KTQ_DTYPE_F32) return static_cast<const float *>(scales)[i];
    const uint16_t b = static_cast<const uint16_t *>(scales)[i];
    return d == KTQ_DTYPE_BF16 ? math::from_bf16(b) : math::from_f16(b);
}

// Dense LSB-first packing of `n` unsigned `bits`-wide values into `out`
// (ceil(n * bits / 32) words), as compressed-tensors' pack_to_int32.
template <typename Get>
void pack_dense(int bits, uint64_t n, uint32_t *out, Get get) {
    const uint64_t words = (n * static_cast<uint64_t>(bits) + 31) / 32;
    std::fill(out, out + words, 0u);
    for (uint64_t i = 0; i < n; ++i) {
        const uint32_t u = get(i);
        const uint64_t pos = i * static_cast<uint64_t>(bits);
        const uint64_t w = pos >> 5;
        const unsigned off = static_cast<unsigned>(pos & 31);
        out[w] |= u << off;
        if (off + static_cast<unsigned>(bits) > 32) out[w + 1] |= u >> (32 - off);
    }
}

uint32_t unpack_one(int bits, const uint32_t *in, uint64_t i) {
    const uint64_t pos = i * static_cast<uint64_t>(bits);
    const uint64_t w = pos >> 5;
    const unsigned off = static_cast<unsigned>(pos & 31);
    uint64_t v = in[w] >> off;
    if (off + static_cast<unsigned>(bits) > 32) v |= static_cast<uint64_t>(in[w + 1]) << (32 - off);
    return static_cast<uint32_t>(v & ((1u << bits) - 1));
}

}  // namespace

std::string scheme_problem(const Scheme &s) {
    if (s.bits < 2 || s.bits > 8) return "num_bits must be 2..8, got " + std::to_string(s.bits);
    if (s.group_size == 0 || s.group_size < -1)
        return "group size must be positive, or -1 for one scale per output channel, got " +
               std::to_string(s.group_size);
    if (s.dtype != KTQ_DTYPE_BF16 && s.dtype != KTQ_DTYPE_F16 && s.dtype != KTQ_DTYPE_F32)
        return std::string("scale dtype must be BF16, F16 or F32, got ") + dtype_name(s.dtype);
    return {};
}

std::string shape_problem(const Scheme &s, uint64_t rows, uint64_t cols) {
    if (rows == 0 || cols == 0) return "empty weight";
    if (s.group_size > 0 && cols % static_cast<uint64_t>(s.group_size) != 0)
        return "in-features " + std::to_string(cols) + " not divisible by the group size " +
               std::to_string(s.group_size);
    return {};
}

uint64_t groups_per_row(const Scheme &s, uint64_t cols) { return cols / group_len(s, cols); }
uint64_t packed_words_per_row(const Scheme &s, uint64_t cols) { return (cols * static_cast<uint64_t>(s.bits) + 31) / 32; }
uint64_t zero_point_words(const Scheme &s, uint64_t rows) { return (rows * static_cast<uint64_t>(s.bits) + 31) / 32; }
uint64_t scale_bytes(const Scheme &s, uint64_t rows, uint64_t cols) {
    return rows * groups_per_row(s, cols) * dtype_size(s.dtype);
}

uint64_t quantize_rows(const Scheme &s, const float *w, uint64_t rows, uint64_t cols, uint32_t *packed, void *scales,
                       int8_t *zp) {
    const int dt = dtype_code(s.dtype);
    const uint64_t glen = group_len(s, cols), groups = cols / glen, words = packed_words_per_row(s, cols);
    const uint32_t offset = 1u << (s.bits - 1);
    uint64_t non_finite = 0;
    std::vector<int> codes(cols);
    for (uint64_t r = 0; r < rows; ++r) {
        const float *row = w + r * cols;
        for (uint64_t g = 0; g < groups; ++g) {
            const float *x = row + g * glen;
            float lo = x[0], hi = x[0];
            for (uint64_t i = 0; i < glen; ++i) {
                if (!std::isfinite(x[i])) ++non_finite;
                lo = std::min(lo, x[i]);
                hi = std::max(hi, x[i]);
            }
            const math::GroupParams p = math::group_params(dt, s.bits, s.symmetric, lo, hi);
            store_scale(s.dtype, scales, r * groups + g, p.scale);
            if (zp) zp[r * groups + g] = static_cast<int8_t>(p.zp);
            for (uint64_t i = 0; i < glen; ++i) codes[g * glen + i] = math::code_of(dt, s.bits, x[i], p);
        }
        pack_dense(s.bits, cols, packed + r * words,
                   [&](uint64_t i) { return static_cast<uint32_t>(codes[i] + static_cast<int>(offset)); });
    }
    return non_finite;
}

void pack_zero_points(const Scheme &s, const int8_t *zp, uint64_t rows, uint64_t groups, uint32_t *out) {
    const uint64_t words = zero_point_words(s, rows);
    const int offset = 1 << (s.bits - 1);
    std::vector<uint32_t> column(words);
    for (uint64_t g = 0; g < groups; ++g) {
        pack_dense(s.bits, rows, column.data(),
                   [&](uint64_t r) { return static_cast<uint32_t>(zp[r * groups + g] + offset); });
        for (uint64_t w = 0; w < words; ++w) out[w * groups + g] = column[w];
    }
}

void unpack_zero_points(const Scheme &s, const uint32_t *packed, uint64_t rows, uint64_t groups, int8_t *zp) {
    const uint64_t words = zero_point_words(s, rows);
    const int offset = 1 << (s.bits - 1);
    std::vector<uint32_t> column(words);
    for (uint64_t g = 0; g < groups; ++g) {
        for (uint64_t w = 0; w < words; ++w) column[w] = packed[w * groups + g];
        for (uint64_t r = 0; r < rows; ++r)
            zp[r * groups + g] = static_cast<int8_t>(static_cast<int>(unpack_one(s.bits, column.data(), r)) - offset);
    }
}

void dequantize_rows(const Scheme &s, const uint32_t *packed, const void *scales, const int8_t *zp, uint64_t rows,
                     uint64_t cols, float *out) {
    const int dt = dtype_code(s.dtype);
    const uint64_t glen = group_len(s, cols), groups = cols / glen, words = packed_words_per_row(s, cols);
    const int offset = 1 << (s.bits - 1);
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t g = 0; g < groups; ++g) {
            const math::GroupParams p{load_scale(s.dtype, scales, r * groups + g),
                                      zp ? static_cast<float>(zp[r * groups + g]) : 0.0f};
            for (uint64_t i = g * glen; i < (g + 1) * glen; ++i) {
                const int q = static_cast<int>(unpack_one(s.bits, packed + r * words, i)) - offset;
                out[r * cols + i] = math::value_of(dt, q, p);
            }
        }
}

void round_to_dtype(ktq_dtype dtype, float *v, uint64_t n) {
    const int dt = dtype_code(dtype);
    if (dt == math::kF32) return;
    for (uint64_t i = 0; i < n; ++i) v[i] = math::round_to(dt, v[i]);
}

}  // namespace ktq::ct
