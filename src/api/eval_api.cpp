// C API: perplexity with the native forward pass.
#include <cstddef>
#include <cstring>

#include "api/handles.h"
#include "forward/perplexity.h"
#include "ktq/eval.h"

using ktq::guarded;
using ktq::require;

extern "C" {

namespace {

// Bytes of each options version: a caller built against an older header
// passes a smaller struct, read only as far as it goes.
size_t eval_options_size(unsigned version) {
    return version == 1 ? offsetof(ktq_eval_options, device) : sizeof(ktq_eval_options);
}

}  // namespace

ktq_status ktq_eval_options_init(ktq_eval_options *opts, unsigned version) {
    ktq_status st = ktq::init_versioned_prefix(opts, version, KTQ_EVAL_OPTIONS_VERSION, eval_options_size);
    if (st != KTQ_OK) return st;
    opts->window = 256;
    opts->max_tokens = 131072;
    opts->batch_windows = 16;
    return KTQ_OK;
}

ktq_status ktq_eval_perplexity(ktq_eval_result *out, const ktq_model *model, const ktq_tokenizer *tokenizer,
                               const char *text, size_t text_len, const ktq_eval_options *opts, ktq_error **err) {
    return guarded(err, [&] {
        require(out != nullptr, "out is NULL");
        require(model != nullptr, "model is NULL");
        require(tokenizer != nullptr, "tokenizer is NULL");
        require(text != nullptr || text_len == 0, "text is NULL");
        ktq_eval_options o;
        ktq_eval_options_init(&o, KTQ_EVAL_OPTIONS_VERSION);
        ktq::overlay_versioned(o, opts, KTQ_EVAL_OPTIONS_VERSION, "ktq_eval_options", eval_options_size);
        require(o.device == KTQ_DEVICE_CPU || o.device == KTQ_DEVICE_CUDA, "unknown device");
        require(o.window >= 2, "window must be at least 2");
        require(o.batch_windows >= 1, "batch_windows must be at least 1");
        const std::vector<int32_t> tokens = tokenizer->impl->encode(std::string_view(text ? text : "", text_len));
        if (o.token_nll) {
            uint64_t usable = tokens.size();
            if (o.max_tokens > 0) usable = std::min<uint64_t>(usable, o.max_tokens);
            const uint64_t need = usable / static_cast<uint64_t>(o.window) * static_cast<uint64_t>(o.window - 1);
            if (o.token_nll_capacity < need)
                ktq::fail(KTQ_ERR_BUFFER_TOO_SMALL, "token_nll holds " + std::to_string(o.token_nll_capacity) +
                                                        " values, " + std::to_string(need) + " positions will be scored");
        }
        std::vector<double> nll;
        ktq::PerplexityOptions po;
        po.window = o.window;
        po.max_tokens = static_cast<int64_t>(o.max_tokens);
        po.batch_windows = o.batch_windows;
        po.cuda = o.device == KTQ_DEVICE_CUDA;
        if (o.token_nll) po.token_nll = &nll;
        if (o.progress)
            po.progress = [&](int layer, int layers) {
                ktq_progress p{};
                p.version = KTQ_PROGRESS_VERSION;
                p.layer = layer;
                p.layers_total = layers;
                p.tensor = "";
                p.bytes_done = static_cast<uint64_t>(layer);
                p.bytes_total = static_cast<uint64_t>(layers);
                return o.progress(&p, o.payload) == 0;
            };
        const ktq::PerplexityResult r = ktq::evaluate_perplexity(*model->impl, tokens, po);
        out->perplexity = r.perplexity;
        out->mean_nll = r.mean_nll;
        out->tokens_scored = r.tokens_scored;
        out->windows = r.windows;
        if (o.token_nll) std::copy(nll.begin(), nll.end(), o.token_nll);
    });
}

}  // extern "C"
