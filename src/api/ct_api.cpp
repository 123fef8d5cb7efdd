// C API: compressed-tensors quantization of single matrices.
#include <cstring>
#include <vector>

#include "api/handles.h"
#include "ktq/compressed_tensors.h"
#include "quant/ct_rtn.h"
#include "quant/ct_rtn_math.h"
#include "reading/dtype.h"

using ktq::check_version;
using ktq::fail;
using ktq::guarded;
using ktq::require;

namespace {

ktq::ct::Scheme scheme_of(const ktq_ct_scheme *s) {
    require(s != nullptr, "scheme is NULL");
    check_version(s->version, KTQ_CT_SCHEME_VERSION, "ktq_ct_scheme");
    ktq::ct::Scheme out;
    out.bits = s->num_bits;
    out.group_size = s->group_size;
    out.symmetric = s->symmetric != 0;
    out.dtype = s->dtype;
    if (s->rounding != KTQ_CT_ROUND_FP32 && s->rounding != KTQ_CT_ROUND_DTYPE)
        fail(KTQ_ERR_INVALID_ARGUMENT, "unknown rounding " + std::to_string(static_cast<int>(s->rounding)));
    out.dtype_rounding = s->rounding == KTQ_CT_ROUND_DTYPE;
    if (auto problem = ktq::ct::scheme_problem(out); !problem.empty()) fail(KTQ_ERR_INVALID_ARGUMENT, problem);
    return out;
}

struct Sizes {
    size_t packed, scales, zero_points;
};

Sizes sizes_of(const ktq::ct::Scheme &s, uint64_t rows, uint64_t cols) {
    if (auto problem = ktq::ct::shape_problem(s, rows, cols); !problem.empty())
        fail(KTQ_ERR_INVALID_ARGUMENT, "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]: " + problem);
    const uint64_t groups = ktq::ct::groups_per_row(s, cols);
    return {rows * ktq::ct::packed_words_per_row(s, cols), rows * groups,
            s.symmetric ? 0 : ktq::ct::zero_point_words(s, rows) * groups};
}

void check_buffer(const char *what, size_t have, size_t need, const void *p) {
    if (need == 0) return;
    if (p == nullptr) fail(KTQ_ERR_INVALID_ARGUMENT, std::string(what) + " is NULL");
    if (have < need)
        fail(KTQ_ERR_BUFFER_TOO_SMALL, std::string(what) + ": need " + std::to_string(need) + " elements, buffer has " +
                                           std::to_string(have));
}

}  // namespace

extern "C" {

ktq_status ktq_ct_scheme_init(ktq_ct_scheme *scheme, unsigned version) {
    ktq_status st = ktq::init_versioned(scheme, version, KTQ_CT_SCHEME_VERSION);
    if (st != KTQ_OK) return st;
    scheme->num_bits = 4;
    scheme->group_size = 128;
    scheme->symmetric = 1;
    scheme->dtype = KTQ_DTYPE_BF16;
    return KTQ_OK;
}

ktq_status ktq_ct_sizes(size_t *packed_words, size_t *scale_count, size_t *zero_point_words, uint64_t rows,
                        uint64_t cols, const ktq_ct_scheme *scheme, ktq_error **err) {
    return guarded(err, [&] {
        const Sizes z = sizes_of(scheme_of(scheme), rows, cols);
        if (packed_words) *packed_words = z.packed;
        if (scale_count) *scale_count = z.scales;
        if (zero_point_words) *zero_point_words = z.zero_points;
    });
}

ktq_status ktq_ct_quantize(int32_t *packed, size_t packed_words, void *scales, size_t scale_count,
                           int32_t *zero_points, size_t zero_point_words, const void *weights, uint64_t rows,
                           uint64_t cols, const ktq_ct_scheme *scheme, ktq_error **err) {
    return guarded(err, [&] {
        const ktq::ct::Scheme s = scheme_of(scheme);
        const Sizes z = sizes_of(s, rows, cols);
        require(weights != nullptr, "weights is NULL");
        check_buffer("packed", packed_words, z.packed, packed);
        check_buffer("scales", scale_count, z.scales, scales);
        check_buffer("zero_points", zero_point_words, z.zero_points, zero_points);
        std::vector<float> w(rows * cols);
        if (s.dtype == KTQ_DTYPE_F32) {
            std::memcpy(w.data(), weights, w.size() * 4);
        } else {
            const auto *bits = static_cast<const uint16_t *>(weights);
            for (size_t i = 0; i < w.size(); ++i)
                w[i] = s.dtype == KTQ_DTYPE_BF16 ? ktq::ct::math::from_bf16(bits[i]) : ktq::ct::math::from_f16(bits[i]);
        }
        std::vector<int8_t> zp(s.symmetric ? 0 : z.scales);
        const uint64_t bad = ktq::ct::quantize_rows(s, w.data(), rows, cols, reinterpret_cast<uint32_t *>(packed), scales,
                                                    s.symmetric ? nullptr : zp.data());
        if (bad) fail(KTQ_ERR_FORMAT, "weights hold " + std::to_string(bad) + " NaN/Inf value(s)");
        if (!s.symmetric)
            ktq::ct::pack_zero_points(s, zp.data(), rows, z.scales / rows, reinterpret_cast<uint32_t *>(zero_points));
    });
}

ktq_status ktq_ct_dequantize(void *weights, const int32_t *packed, size_t packed_words, const void *scales,
                             size_t scale_count, const int32_t *zero_points, size_t zero_point_words, uint64_t rows,
                             uint64_t cols, const ktq_ct_scheme *scheme, ktq_error **err) {
    return guarded(err, [&] {
        const ktq::ct::Scheme s = scheme_of(scheme);
        const Sizes z = sizes_of(s, rows, cols);
        require(weights != nullptr, "weights is NULL");
        check_buffer("packed", packed_words, z.packed, packed);
        check_buffer("scales", scale_count, z.scales, scales);
        check_buffer("zero_points", zero_point_words, z.zero_points, zero_points);
        std::vector<int8_t> zp(s.symmetric ? 0 : z.scales);
        if (!s.symmetric)
            ktq::ct::unpack_zero_points(s, reinterpret_cast<const uint32_t *>(zero_points), rows, z.scales / rows,
                                        zp.data());
        std::vector<float> w(rows * cols);
        ktq::ct::dequantize_rows(s, reinterpret_cast<const uint32_t *>(packed), scales,
                                 s.symmetric ? nullptr : zp.data(), rows, cols, w.data());
        if (s.dtype == KTQ_DTYPE_F32) {
            std::memcpy(weights, w.data(), w.size() * 4);
        } else {
            auto *bits = static_cast<uint16_t *>(weights);
            for (size_t i = 0; i < w.size(); ++i)
                bits[i] = s.dtype == KTQ_DTYPE_BF16 ? ktq::ct::math::bf16_bits(w[i]) : ktq::ct::math::f16_bits(w[i]);
        }
    });
}

}  // extern "C"
