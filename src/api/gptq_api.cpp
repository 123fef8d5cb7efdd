// C API: GPTQ of single Linears fed by the caller's forward pass.
#include <cmath>
#include <cstddef>
#include <cstring>
#include <map>
#include <mutex>

#include "api/ct_arguments.h"
#include "api/handles.h"
#include "cuda/gptq_cuda.h"
#include "ktq/gptq.h"
#include "quant/ct_rtn.h"
#include "runtime/half_float.h"
#include "runtime/thread_pool.h"

using ktq::fail;
using ktq::guarded;
using ktq::require;

namespace ktq {

gptq::ActOrder act_order_of(ktq_act_order a) {
    switch (a) {
    case KTQ_ACT_ORDER_NONE: return gptq::ActOrder::None;
    case KTQ_ACT_ORDER_STATIC: return gptq::ActOrder::Static;
    }
    fail(KTQ_ERR_INVALID_ARGUMENT, "unknown act_order " + std::to_string(static_cast<int>(a)));
}

}  // namespace ktq

namespace {

ktq::ThreadPool &api_pool(int threads) {
    // One pool per thread count asked for, kept for the process: GPTQ calls
    // come in the thousands (one per Linear) and must not start threads each time.
    static std::mutex mutex;
    static std::map<int, std::unique_ptr<ktq::ThreadPool>> pools;
    const int n = ktq::resolve_threads(threads);
    std::lock_guard<std::mutex> lock(mutex);
    auto &p = pools[n];
    if (!p) p = std::make_unique<ktq::ThreadPool>(n);
    return *p;
}

// Bytes of each options version: a caller built against an older header
// passes a smaller struct, read only as far as it goes.
size_t gptq_options_size(unsigned version) {
    return version == 1 ? offsetof(ktq_gptq_options, device) : sizeof(ktq_gptq_options);
}

}  // namespace

extern "C" {

ktq_status ktq_gptq_options_init(ktq_gptq_options *opts, unsigned version) {
    ktq_status st = ktq::init_versioned_prefix(opts, version, KTQ_GPTQ_OPTIONS_VERSION, gptq_options_size);
    if (st != KTQ_OK) return st;
    opts->block_size = 128;
    opts->dampening_frac = 0.01;
    opts->act_order = KTQ_ACT_ORDER_STATIC;
    return KTQ_OK;
}

ktq_status ktq_gptq_new(ktq_gptq **out, uint64_t in_features, ktq_error **err) {
    return guarded(err, [&] {
        require(out != nullptr, "out is NULL");
        *out = nullptr;
        require(in_features > 0 && in_features <= (1u << 17), "in_features must be in 1..131072");
        auto g = std::make_unique<ktq_gptq>();
        g->hessian = ktq::gptq::Hessian(static_cast<int64_t>(in_features));
        *out = g.release();
    });
}

void ktq_gptq_free(ktq_gptq *gptq) { delete gptq; }

ktq_status ktq_gptq_add_batch(ktq_gptq *gptq, const float *x, uint64_t rows, ktq_error **err) {
    return guarded(err, [&] {
        require(gptq != nullptr, "gptq is NULL");
        require(x != nullptr || rows == 0, "x is NULL");
        gptq->hessian.add(x, static_cast<int64_t>(rows), api_pool(0));
    });
}

ktq_status ktq_gptq_hessian(float *h, size_t capacity, uint64_t *rows_seen, const ktq_gptq *gptq, ktq_error **err) {
    return guarded(err, [&] {
        require(gptq != nullptr, "gptq is NULL");
        if (rows_seen) *rows_seen = gptq->hessian.rows();
        if (!h) return;
        const std::vector<float> v = gptq->hessian.normalized();
        if (capacity < v.size())
            fail(KTQ_ERR_BUFFER_TOO_SMALL, "the Hessian has " + std::to_string(v.size()) + " values, buffer holds " +
                                               std::to_string(capacity));
        std::copy(v.begin(), v.end(), h);
    });
}

ktq_status ktq_gptq_quantize(int32_t *packed, size_t packed_words, void *scales, size_t scale_count,
                             int32_t *zero_points, size_t zero_point_words, float *dequantized, double *loss,
                             int *rtn_fallback, const ktq_gptq *gptq, const void *weights, uint64_t rows,
                             const ktq_ct_scheme *scheme, const ktq_gptq_options *opts, ktq_error **err) {
    return guarded(err, [&] {
        require(gptq != nullptr, "gptq is NULL");
        require(weights != nullptr, "weights is NULL");
        ktq_gptq_options o;
        ktq_gptq_options_init(&o, KTQ_GPTQ_OPTIONS_VERSION);
        ktq::overlay_versioned(o, opts, KTQ_GPTQ_OPTIONS_VERSION, "ktq_gptq_options", gptq_options_size);
        require(o.device == KTQ_DEVICE_CPU || o.device == KTQ_DEVICE_CUDA, "unknown device");
        ktq::gptq::Options go;
        go.scheme = ktq::ct_arguments::scheme_of(scheme);  // its rounding is not used: GPTQ rounds in float32
        go.block_size = o.block_size;
        go.dampening_frac = o.dampening_frac;
        go.act_order = ktq::act_order_of(o.act_order);
        const ktq::ct::Scheme &s = go.scheme;
        const uint64_t cols = static_cast<uint64_t>(gptq->hessian.cols());
        const ktq::ct_arguments::Sizes z = ktq::ct_arguments::sizes_of(s, rows, cols);
        const uint64_t groups = ktq::ct::groups_per_row(s, cols);
        ktq::ct_arguments::check_buffers(z, packed, packed_words, scales, scale_count, zero_points, zero_point_words);
        // Weights as floats holding values of the dtype.
        const std::vector<float> w = ktq::ct_arguments::weights_as_float(weights, rows * cols, s.dtype);
        for (float v : w)
            if (!std::isfinite(v)) fail(KTQ_ERR_FORMAT, "weights hold NaN or infinite values");
        ktq::gptq::Result r;
        if (o.device == KTQ_DEVICE_CUDA) {
            const std::vector<float> h = gptq->hessian.normalized();
            ktq::cuda_gptq::Batch b;
            b.rows = static_cast<int64_t>(rows);
            b.cols = static_cast<int64_t>(cols);
            b.hessians.push_back({h.data(), nullptr, 1.0f});
            b.weights.push_back(w.data());
            b.factor_of.push_back(0);
            b.dequantized = dequantized != nullptr;
            r = std::move(ktq::cuda_gptq::quantize(b, go, {o.cuda_device}).at(0));
        } else {
            r = ktq::gptq::quantize(w.data(), static_cast<int64_t>(rows), static_cast<int64_t>(cols),
                                    gptq->hessian.normalized(), go, api_pool(o.threads));
        }
        ktq::ct::pack_codes(s, r.codes.data(), rows, cols, reinterpret_cast<uint32_t *>(packed));
        ktq::ct::store_scales(s, r.scales.data(), r.scales.size(), scales);
        if (!s.symmetric)
            ktq::ct::pack_zero_points(s, r.zero_points.data(), rows, groups, reinterpret_cast<uint32_t *>(zero_points));
        if (dequantized) std::copy(r.dequantized.begin(), r.dequantized.end(), dequantized);
        if (loss) *loss = r.loss;
        if (rtn_fallback) *rtn_fallback = r.rtn_fallback ? 1 : 0;
    });
}

}  // extern "C"
