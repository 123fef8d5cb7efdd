#include "forward/perplexity.h"

#include <cmath>

#include "cuda/cuda_forward.h"
#include "cuda/cuda_matmul.h"
#include "forward/causal_lm.h"
#include "forward/decoder_layer.h"
#include "forward/layer_weights.h"
#include "runtime/error.h"

namespace ktq {

PerplexityResult evaluate_perplexity(const Model &model, const std::vector<int32_t> &tokens,
                                     const PerplexityOptions &opts) {
    if (opts.window < 2) fail(KTQ_ERR_INVALID_ARGUMENT, "window must be at least 2 tokens");
    const ForwardConfig cfg = ForwardConfig::resolve(model);
    int64_t usable = static_cast<int64_t>(tokens.size());
    if (opts.max_tokens > 0) usable = std::min(usable, opts.max_tokens);
    const int64_t seqs = usable / opts.window, T = opts.window;
    if (seqs == 0)
        fail(KTQ_ERR_INVALID_ARGUMENT, "the text has " + std::to_string(tokens.size()) +
                                           " tokens, fewer than one window of " + std::to_string(T));
    std::vector<float> hidden = embed_tokens(model, cfg, tokens.data(), seqs * T);
    const int64_t batch = std::max<int64_t>(1, opts.batch_windows);
    std::unique_ptr<MatmulBackend> gpu;
    std::unique_ptr<DeviceForward> device;
    if (opts.cuda) {
        // Whole layers on the GPU while the hidden states fit there; a layer whose weights do not fit beside
        // them (and every layer, when the hidden states do not fit) runs with only its products on the GPU.
        device = make_cuda_forward(cfg, seqs, T, opts.cuda_batch_windows, 0, opts.cuda_memory_limit);
        if (device) device->load_hidden(hidden.data());
    }
    auto per_product = [&]() -> MatmulBackend * {
        if (opts.cuda && !gpu) gpu = make_cuda_matmul(0);
        return gpu.get();
    };
    bool on_device = device != nullptr;  // where the current hidden states are
    uint64_t device_layers = 0;
    ForwardContext ctx;
    ctx.cfg = &cfg;
    ctx.pool = &model.pool();
    for (int l = 0; l < cfg.layers; ++l) {
        if (device) gpu.reset();    // all its memory back for the whole-layer forward
        else if (gpu) gpu->forget();  // the previous layer's weights
        const LayerWeights w = load_layer(model, cfg, l);
        const int64_t windows = device ? device->windows_per_batch(w) : 0;
        bool done = false;
        if (windows > 0) {
            if (!on_device) device->load_hidden(hidden.data());
            on_device = true;
            done = device->forward_layer(w, windows);
            device_layers += done;
        }
        if (!done) {
            if (device) device->release();
            if (on_device) device->save_hidden(hidden.data());
            on_device = false;
            ctx.matmul = per_product();
            for (int64_t s0 = 0; s0 < seqs; s0 += batch)
                forward_layer(ctx, w, &hidden[static_cast<size_t>(s0 * T * cfg.hidden)], std::min(batch, seqs - s0), T);
        }
        if (opts.progress && !opts.progress(l + 1, cfg.layers)) fail(KTQ_ERR_CANCELLED, "cancelled");
    }
    gpu.reset();  // the head's room
    bool head_on_device = false;
    if (device) {
        device->release();
        head_on_device = device->head_fits(static_cast<int64_t>(lm_head(model, cfg).rows));
        if (head_on_device && !on_device) device->load_hidden(hidden.data());
        if (!head_on_device && on_device) device->save_hidden(hidden.data());
        if (!head_on_device) device.reset();
    }
    const std::vector<double> nll = head_on_device
                                        ? device->next_token_nll(model, tokens.data())
                                        : next_token_nll(model, cfg, hidden.data(), tokens.data(), seqs, T, per_product());
    double sum = 0;
    for (double v : nll) sum += v;
    PerplexityResult r;
    r.tokens_scored = nll.size();
    r.windows = static_cast<uint64_t>(seqs);
    r.mean_nll = sum / static_cast<double>(nll.size());
    r.perplexity = std::exp(r.mean_nll);
    r.device_layers = device_layers;
    r.head_on_device = head_on_device;
    if (opts.token_nll) *opts.token_nll = nll;
    return r;
}

}  // namespace ktq
