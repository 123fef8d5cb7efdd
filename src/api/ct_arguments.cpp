#include "api/ct_arguments.h"

#include <cstddef>
#include <cstring>
#include <string>

#include "api/handles.h"
#include "runtime/half_float.h"

namespace ktq::ct_arguments {

size_t scheme_size(unsigned version) {
    return version == 1 ? offsetof(ktq_ct_scheme, observer) : sizeof(ktq_ct_scheme);
}

ct::Observer observer_of(ktq_ct_observer o) {
    if (o == KTQ_CT_OBSERVER_MINMAX) return ct::Observer::kMinMax;
    if (o == KTQ_CT_OBSERVER_MSE) return ct::Observer::kMse;
    fail(KTQ_ERR_INVALID_ARGUMENT, "unknown observer " + std::to_string(static_cast<int>(o)));
}

ct::Scheme scheme_of(const ktq_ct_scheme *caller) {
    require(caller != nullptr, "scheme is NULL");
    ktq_ct_scheme full{};  // fields a caller's older version lacks stay 0: their defaults
    overlay_versioned(full, caller, KTQ_CT_SCHEME_VERSION, "ktq_ct_scheme", scheme_size);
    const ktq_ct_scheme *s = &full;
    ct::Scheme out;
    out.bits = s->num_bits;
    out.group_size = s->group_size;
    out.symmetric = s->symmetric != 0;
    out.dtype = s->dtype;
    if (s->rounding != KTQ_CT_ROUND_FP32 && s->rounding != KTQ_CT_ROUND_DTYPE)
        fail(KTQ_ERR_INVALID_ARGUMENT, "unknown rounding " + std::to_string(static_cast<int>(s->rounding)));
    out.dtype_rounding = s->rounding == KTQ_CT_ROUND_DTYPE;
    out.observer = observer_of(s->observer);
    if (auto problem = ct::scheme_problem(out); !problem.empty()) fail(KTQ_ERR_INVALID_ARGUMENT, problem);
    return out;
}

Sizes sizes_of(const ct::Scheme &s, uint64_t rows, uint64_t cols) {
    if (auto problem = ct::shape_problem(s, rows, cols); !problem.empty())
        fail(KTQ_ERR_INVALID_ARGUMENT, "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]: " + problem);
    const uint64_t groups = ct::groups_per_row(s, cols);
    return {rows * ct::packed_words_per_row(s, cols), rows * groups,
            s.symmetric ? 0 : ct::zero_point_words(s, rows) * groups};
}

namespace {

void check_buffer(const char *what, size_t have, size_t need, const void *p) {
    if (need == 0) return;
    if (p == nullptr) fail(KTQ_ERR_INVALID_ARGUMENT, std::string(what) + " is NULL");
    if (have < need)
        fail(KTQ_ERR_BUFFER_TOO_SMALL, std::string(what) + ": need " + std::to_string(need) + " elements, buffer has " +
                                           std::to_string(have));
}

}  // namespace

void check_buffers(const Sizes &z, const void *packed, size_t packed_words, const void *scales, size_t scale_count,
                   const void *zero_points, size_t zero_point_words) {
    check_buffer("packed", packed_words, z.packed, packed);
    check_buffer("scales", scale_count, z.scales, scales);
    check_buffer("zero_points", zero_point_words, z.zero_points, zero_points);
}

std::vector<float> weights_as_float(const void *weights, uint64_t n, ktq_dtype dtype) {
    std::vector<float> w(n);
    if (dtype == KTQ_DTYPE_F32) {
        std::memcpy(w.data(), weights, w.size() * sizeof(float));
        return w;
    }
    const auto *bits = static_cast<const uint16_t *>(weights);
    for (size_t i = 0; i < w.size(); ++i) w[i] = dtype == KTQ_DTYPE_BF16 ? half::from_bf16(bits[i]) : half::from_f16(bits[i]);
    return w;
}

}  // namespace ktq::ct_arguments
