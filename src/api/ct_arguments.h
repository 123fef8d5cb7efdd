// Argument checking shared by the C API functions that take compressed-tensors
// buffers (ktq_ct_quantize / ktq_ct_dequantize, ktq_gptq_quantize): the
// scheme struct, the three output sizes, the caller's buffers, and the
// weights given as raw BF16/F16 bits or floats.
#pragma once

#include <cstdint>
#include <vector>

#include "ktq/compressed_tensors.h"
#include "quant/ct_rtn.h"

namespace ktq::ct_arguments {

// Validated ct::Scheme of a caller's ktq_ct_scheme (version, enums, bits);
// a version-1 struct (no observer field) means the min-max observer.
ct::Scheme scheme_of(const ktq_ct_scheme *s);
// Bytes of each ktq_ct_scheme version, for ktq_ct_scheme_init.
size_t scheme_size(unsigned version);
// The observer of a ktq_ct_observer value; KTQ_ERR_INVALID_ARGUMENT for others.
ct::Observer observer_of(ktq_ct_observer o);

struct Sizes {
    size_t packed, scales, zero_points;  // elements of weight_packed, weight_scale, weight_zero_point
};
// Throws KTQ_ERR_INVALID_ARGUMENT naming the shape when the scheme cannot take it.
Sizes sizes_of(const ct::Scheme &s, uint64_t rows, uint64_t cols);

// Each buffer must be non-NULL and large enough where its size is not 0.
void check_buffers(const Sizes &z, const void *packed, size_t packed_words, const void *scales, size_t scale_count,
                   const void *zero_points, size_t zero_point_words);

// n weights of `dtype` (raw BF16/F16 bits, or floats) as floats.
std::vector<float> weights_as_float(const void *weights, uint64_t n, ktq_dtype dtype);

}  // namespace ktq::ct_arguments
