// C API: compressed-tensors quantization of single matrices.
#include <cstring>
#include <vector>

#include "api/ct_arguments.h"
#include "api/handles.h"
#include "ktq/compressed_tensors.h"
#include "quant/ct_rtn.h"
#include "quant/ct_rtn_math.h"
#include "reading/dtype.h"

using namespace ktq::ct_arguments;
using ktq::fail;
using ktq::guarded;
using ktq::require;


extern "C" {

ktq_status ktq_ct_scheme_init(ktq_ct_scheme *scheme, unsigned version) {
    ktq_status st = ktq::init_versioned_prefix(scheme, version, KTQ_CT_SCHEME_VERSION, ktq::ct_arguments::scheme_size);
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
        check_buffers(z, packed, packed_words, scales, scale_count, zero_points, zero_point_words);
        const std::vector<float> w = weights_as_float(weights, rows * cols, s.dtype);
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
        check_buffers(z, packed, packed_words, scales, scale_count, zero_points, zero_point_words);
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
