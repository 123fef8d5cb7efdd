#include "quant/ct_rtn.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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

namespace {

// The hot loop, specialised per dtype and symmetry so that it is straight
// arithmetic the compiler vectorises (the dtype rounding is integer bit
// work, rint is roundps); the same operations as math::code_of, in the same
// order, so every clone gives the same bits.
template <int DT>
inline float round_dt(float v) {
    if constexpr (DT == math::kBF16) {
        uint32_t u;
        std::memcpy(&u, &v, 4);
        u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;  // no NaN here: non-finite groups are reported
        std::memcpy(&v, &u, 4);
        return v;
    } else {
        return math::round_to(DT, v);
    }
}

template <int DT, bool SYM>  // DT: the dtype of the rounding, math::kF32 for none
inline void group_codes(const float *x, uint64_t n, const math::GroupParams &p, float qmin, float qmax, int32_t *codes) {
    const float scale = p.scale, zp = p.zp;
    for (uint64_t i = 0; i < n; ++i) {
        float v = round_dt<DT>(x[i] / scale);
        if (!SYM) v = round_dt<DT>(v + zp);
        v = v < qmin ? qmin : v;
        v = v > qmax ? qmax : v;
        codes[i] = static_cast<int32_t>(rintf(v));
    }
}

template <int DT>
inline void group_codes_any(bool sym, const float *x, uint64_t n, const math::GroupParams &p, float qmin, float qmax,
                            int32_t *codes) {
    if (sym || p.zp == 0.0f)
        group_codes<DT, true>(x, n, p, qmin, qmax, codes);
    else
        group_codes<DT, false>(x, n, p, qmin, qmax, codes);
}

// math::mse_group_params for the host: the same terms and the same partial
// sums, but each candidate's terms computed in one straight loop the compiler
// vectorises (the dtype rounding as bit work), then added in the fixed order.
// Codes always add the zero point: for a symmetric group it is 0, and adding
// 0 to a value already rounded to the dtype changes nothing.
template <int DT, int RD>  // DT: the dtype; RD: the codes' rounding dtype (DT, or kF32 for none)
__attribute__((always_inline)) inline math::GroupParams mse_search(int bits, bool sym, const float *x, uint64_t n,
                                                                   float lo, float hi, float *terms) {
    const float qmin = -static_cast<float>(1 << (bits - 1)), qmax = static_cast<float>((1 << (bits - 1)) - 1);
    float best_lo = lo, best_hi = hi;
    double best = 0;
    for (int i = 0; i < math::kMseSteps; ++i) {
        const float l = math::mse_bound(DT, i, lo), h = math::mse_bound(DT, i, hi);
        const math::GroupParams gp = math::group_params(DT, bits, sym, l, h);
        const float scale = gp.scale, zp = gp.zp;
        for (uint64_t j = 0; j < n; ++j) {
            float v = round_dt<RD>(round_dt<RD>(x[j] / scale) + zp);
            v = v < qmin ? qmin : v;
            v = v > qmax ? qmax : v;
            const float value = round_dt<DT>(round_dt<DT>(rintf(v) - zp) * scale);
            terms[j] = math::pow_2p4(value - x[j]);
        }
        double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        uint64_t j = 0;
        for (; j + 8 <= n; j += 8)
            for (int k = 0; k < 8; ++k) part[k] += static_cast<double>(terms[j + k]);
        for (; j < n; ++j) part[j & 7] += static_cast<double>(terms[j]);
        const double err = math::sum_parts(part);
        if (i == 0 || err < best) best = err, best_lo = l, best_hi = h;
    }
    return math::group_params(DT, bits, sym, best_lo, best_hi);
}

__attribute__((always_inline)) inline math::GroupParams mse_params(int dt, bool dtype_rounding, int bits, bool sym,
                                                                   const float *x, uint64_t n, float lo, float hi,
                                                                   float *terms) {
    const int rd = dtype_rounding ? dt : math::kF32;
    if (dt == math::kBF16)
        return rd == math::kBF16 ? mse_search<math::kBF16, math::kBF16>(bits, sym, x, n, lo, hi, terms)
                                 : mse_search<math::kBF16, math::kF32>(bits, sym, x, n, lo, hi, terms);
    if (dt == math::kF16)
        return rd == math::kF16 ? mse_search<math::kF16, math::kF16>(bits, sym, x, n, lo, hi, terms)
                                : mse_search<math::kF16, math::kF32>(bits, sym, x, n, lo, hi, terms);
    return mse_search<math::kF32, math::kF32>(bits, sym, x, n, lo, hi, terms);
}

// One row: scales, zero points and (codes not null) codes. Returns its NaN/Inf count.
// Compiled three times (AVX-512, AVX2, baseline) and picked at run time by a
// plain function pointer (ifunc-based target_clones crash under TSan).
__attribute__((always_inline)) inline uint64_t quantize_row_body(int dt, bool dtype_rounding, float *terms, int bits, bool sym,
                                                                 uint64_t glen, uint64_t groups, const float *row,
                                                                 int32_t *codes, float *scales_out, float *zp_out) {
    const float qmin = -static_cast<float>(1 << (bits - 1)), qmax = static_cast<float>((1 << (bits - 1)) - 1);
    uint64_t non_finite = 0;
    for (uint64_t g = 0; g < groups; ++g) {
        const float *x = row + g * glen;
        float lo = x[0], hi = x[0];
        uint32_t bad = 0;
        for (uint64_t i = 0; i < glen; ++i) {
            uint32_t u;
            std::memcpy(&u, &x[i], 4);
            bad += (u & 0x7f800000u) == 0x7f800000u;
            lo = x[i] < lo ? x[i] : lo;
            hi = x[i] > hi ? x[i] : hi;
        }
        non_finite += bad;
        const math::GroupParams p = terms ? mse_params(dt, dtype_rounding, bits, sym, x, glen, lo, hi, terms)
                                          : math::group_params(dt, bits, sym, lo, hi);
        scales_out[g] = p.scale;
        zp_out[g] = p.zp;
        if (!codes) continue;
        int32_t *c = codes + g * glen;
        const int rd = dtype_rounding ? dt : math::kF32;
        if (rd == math::kBF16)
            group_codes_any<math::kBF16>(sym, x, glen, p, qmin, qmax, c);
        else if (rd == math::kF16)
            group_codes_any<math::kF16>(sym, x, glen, p, qmin, qmax, c);
        else
            group_codes_any<math::kF32>(sym, x, glen, p, qmin, qmax, c);
    }
    return non_finite;
}

#define KTQ_CT_ROW_ARGS                                                                                      \
    int dt, bool dtype_rounding, float *terms, int bits, bool sym, uint64_t glen, uint64_t groups, const float *row, \
        int32_t *codes, float *scales_out, float *zp_out
#define KTQ_CT_ROW_CALL dt, dtype_rounding, terms, bits, sym, glen, groups, row, codes, scales_out, zp_out

__attribute__((target("avx512f,avx512bw,avx512vl"))) uint64_t quantize_row_avx512(KTQ_CT_ROW_ARGS) {
    return quantize_row_body(KTQ_CT_ROW_CALL);
}
__attribute__((target("avx2"))) uint64_t quantize_row_avx2(KTQ_CT_ROW_ARGS) { return quantize_row_body(KTQ_CT_ROW_CALL); }
uint64_t quantize_row_baseline(KTQ_CT_ROW_ARGS) { return quantize_row_body(KTQ_CT_ROW_CALL); }

using QuantizeRowFn = uint64_t (*)(KTQ_CT_ROW_ARGS);

QuantizeRowFn pick_quantize_row() {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return quantize_row_avx512;
    if (__builtin_cpu_supports("avx2")) return quantize_row_avx2;
    return quantize_row_baseline;
}

uint64_t quantize_row(KTQ_CT_ROW_ARGS) {
    static const QuantizeRowFn fn = pick_quantize_row();
    return fn(KTQ_CT_ROW_CALL);
}

#undef KTQ_CT_ROW_ARGS
#undef KTQ_CT_ROW_CALL

// pack_dense for whole rows, with the two common widths unrolled.
void pack_row(int bits, const int32_t *codes, uint64_t cols, uint32_t *out) {
    const int32_t offset = 1 << (bits - 1);
    if (bits == 4 && cols % 8 == 0) {
        for (uint64_t w = 0; w < cols / 8; ++w) {
            uint32_t v = 0;
            for (unsigned j = 0; j < 8; ++j) v |= static_cast<uint32_t>(codes[w * 8 + j] + offset) << (4 * j);
            out[w] = v;
        }
        return;
    }
    if (bits == 8 && cols % 4 == 0) {
        for (uint64_t w = 0; w < cols / 4; ++w) {
            uint32_t v = 0;
            for (unsigned j = 0; j < 4; ++j) v |= static_cast<uint32_t>(codes[w * 4 + j] + offset) << (8 * j);
            out[w] = v;
        }
        return;
    }
    pack_dense(bits, cols, out, [&](uint64_t i) { return static_cast<uint32_t>(codes[i] + offset); });
}

}  // namespace

void pack_codes(const Scheme &s, const int8_t *codes, uint64_t rows, uint64_t cols, uint32_t *packed) {
    const uint64_t words = packed_words_per_row(s, cols);
    std::vector<int32_t> row(cols);
    for (uint64_t r = 0; r < rows; ++r) {
        for (uint64_t c = 0; c < cols; ++c) row[c] = codes[r * cols + c];
        pack_row(s.bits, row.data(), cols, packed + r * words);
    }
}

void store_scales(const Scheme &s, const float *values, uint64_t n, void *scales) {
    for (uint64_t i = 0; i < n; ++i) store_scale(s.dtype, scales, i, values[i]);
}

uint64_t group_params_rows(const Scheme &s, const float *w, uint64_t rows, uint64_t cols, float *scales, float *zps) {
    const int dt = dtype_code(s.dtype);
    const uint64_t glen = group_len(s, cols), groups = cols / glen;
    std::vector<float> mse_terms(s.observer == Observer::kMse ? glen : 0);
    uint64_t non_finite = 0;
    for (uint64_t r = 0; r < rows; ++r)
        non_finite += quantize_row(dt, s.dtype_rounding, mse_terms.empty() ? nullptr : mse_terms.data(), s.bits,
                                   s.symmetric, glen, groups, w + r * cols, nullptr, scales + r * groups, zps + r * groups);
    return non_finite;
}

uint64_t quantize_rows(const Scheme &s, const float *w, uint64_t rows, uint64_t cols, uint32_t *packed, void *scales,
                       int8_t *zp) {
    const int dt = dtype_code(s.dtype);
    const uint64_t glen = group_len(s, cols), groups = cols / glen, words = packed_words_per_row(s, cols);
    uint64_t non_finite = 0;
    std::vector<int32_t> codes(cols);
    std::vector<float> row_scales(groups), row_zps(groups);
    std::vector<float> mse_terms(s.observer == Observer::kMse ? glen : 0);  // the MSE search's scratch, one group
    for (uint64_t r = 0; r < rows; ++r) {
        non_finite += quantize_row(dt, s.dtype_rounding, mse_terms.empty() ? nullptr : mse_terms.data(), s.bits, s.symmetric, glen, groups, w + r * cols, codes.data(), row_scales.data(),
                                   row_zps.data());
        for (uint64_t g = 0; g < groups; ++g) {
            store_scale(s.dtype, scales, r * groups + g, row_scales[g]);
            if (zp) zp[r * groups + g] = static_cast<int8_t>(row_zps[g]);
        }
        pack_row(s.bits, codes.data(), cols, packed + r * words);
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
    if (s.bits == 4 && glen % 8 == 0) {
        // Eight codes per word, groups on word boundaries: each group's 16 possible values computed once
        // (value_of, so the same bits as below), then looked up. AWQ's search calls this ~20 times per weight.
        for (uint64_t r = 0; r < rows; ++r) {
            const uint32_t *row = packed + r * words;
            for (uint64_t g = 0; g < groups; ++g) {
                const math::GroupParams p{load_scale(s.dtype, scales, r * groups + g),
                                          zp ? static_cast<float>(zp[r * groups + g]) : 0.0f};
                float table[16];
                for (int u = 0; u < 16; ++u) table[u] = math::value_of(dt, u - offset, p);
                float *o = out + r * cols + g * glen;
                const uint32_t *wd = row + g * glen / 8;
                for (uint64_t k = 0; k < glen / 8; ++k)
                    for (int j = 0; j < 8; ++j) o[k * 8 + static_cast<uint64_t>(j)] = table[(wd[k] >> (4 * j)) & 15u];
            }
        }
        return;
    }
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
    if (dt == math::kBF16) {
        // half::bf16_bits without branches, so the compiler vectorizes it (same bits: NaN stays a quiet NaN
        // with its upper payload, everything else rounds to nearest even).
        for (uint64_t i = 0; i < n; ++i) {
            uint32_t u;
            std::memcpy(&u, &v[i], 4);
            const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
            const uint32_t quiet = (u | 0x00400000u) & 0xffff0000u;
            const uint32_t r = (u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded;
            std::memcpy(&v[i], &r, 4);
        }
        return;
    }
    for (uint64_t i = 0; i < n; ++i) v[i] = math::round_to(dt, v[i]);
}

}  // namespace ktq::ct
