#include "engines/sequential_calibration.h"

#include <algorithm>

#include "engines/cast_engine.h"
#include "engines/gguf_engine.h"
#include "forward/causal_lm.h"
#include "reading/model.h"
#include "runtime/error.h"
#include "text/calibration_data.h"

namespace ktq {

bool SequentialCalibration::needs_start(const ktq_quantize_options &opts, int layer) const {
    return !cfg_ || opts.calibration != calibration_ || layer < next_layer_;
}

void SequentialCalibration::start(const Model &model, const ktq_quantize_options &opts, const char *engine) {
    if (!opts.calibration)
        fail(KTQ_ERR_INVALID_ARGUMENT, std::string("the ") + engine +
                                           " engine needs calibration data (ktq_quantize_options.calibration; "
                                           "--dataset on the command line)");
    cfg_ = std::make_unique<ForwardConfig>(ForwardConfig::resolve(model));
    calibration_ = opts.calibration;
    hidden_.clear();
    for (const auto &s : opts.calibration->data.samples)
        hidden_.push_back(embed_tokens(model, *cfg_, s.data(), static_cast<int64_t>(s.size())));
    next_layer_ = 0;
    expert_tokens_.clear();
}

void SequentialCalibration::for_each_batch(int batch, bool keep,
                                           const std::function<void(float *, int64_t, int64_t)> &fn) {
    const int64_t H = cfg_->hidden;
    std::vector<float> buf;
    for (size_t i = 0; i < hidden_.size();) {
        size_t j = i + 1;
        while (j < hidden_.size() && j - i < static_cast<size_t>(std::max(1, batch)) &&
               hidden_[j].size() == hidden_[i].size())
            ++j;
        const size_t n = hidden_[i].size();
        buf.resize(n * (j - i));
        for (size_t k = i; k < j; ++k) std::copy(hidden_[k].begin(), hidden_[k].end(), buf.begin() + (k - i) * n);
        fn(buf.data(), static_cast<int64_t>(j - i), static_cast<int64_t>(n) / H);
        if (keep)
            for (size_t k = i; k < j; ++k)
                std::copy(buf.begin() + (k - i) * n, buf.begin() + (k - i + 1) * n, hidden_[k].begin());
        i = j;
    }
}

std::vector<uint64_t> &SequentialCalibration::expert_tokens(int layer) {
    std::vector<uint64_t> &counts = expert_tokens_[layer];
    counts.assign(static_cast<size_t>(std::max(0, cfg_->num_experts)), 0);
    return counts;
}

uint64_t SequentialCalibration::tokens() const {
    uint64_t tokens = 0;
    for (const auto &h : hidden_) tokens += h.size() / static_cast<size_t>(cfg_->hidden);
    return tokens;
}

nlohmann::ordered_json SequentialCalibration::routing_stats(const char *pass) const {
    nlohmann::ordered_json stats;
    stats["description"] = std::string("routed calibration tokens per expert, per MoE layer (ktq ") + pass +
                           " calibration pass)";
    stats["samples"] = hidden_.size();
    stats["tokens"] = tokens();
    stats["experts_per_token"] = cfg_->top_k;
    nlohmann::ordered_json layers = nlohmann::ordered_json::object();
    for (const auto &[layer, counts] : expert_tokens_)
        if (cfg_->moe_layer.at(static_cast<size_t>(layer))) layers[std::to_string(layer)] = counts;
    stats["layers"] = layers;
    return stats;
}

void SequentialEngine::run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                                 const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) {
    if (layer < 0) {  // embeddings, final norm, LM head: kept as they are (GGUF: in the plan's block types)
        bool gguf = false;
        for (const OutputTensor *t : writer.tensors_of_layer(layer)) gguf |= t->gguf_type >= 0;
        if (gguf)
            write_gguf_layer(model, layer, writer, pool, opts, on_tensor, nullptr);
        else
            CastEngine().run_tensors(model, writer.tensors_of_layer(layer), writer, pool, opts, on_tensor);
        return;
    }
    if (cal_.needs_start(opts, layer)) {
        cal_.start(model, opts, label());
        restart();
    }
    while (cal_.next_layer() < layer) process(model, cal_.next_layer(), writer, pool, opts, on_tensor, false);
    process(model, layer, writer, pool, opts, on_tensor, true);
}

}  // namespace ktq
