#include "engines/sequential_calibration.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "engines/cast_engine.h"
#include "engines/gguf_engine.h"
#include "forward/causal_lm.h"
#include "forward/layer_weights.h"
#include "reading/model.h"
#include "runtime/error.h"
#include "runtime/files.h"
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
    lengths_.clear();
    offsets_.clear();
    close_spill();
    uint64_t at = 0;  // samples lie one after another in the file (when there is one)
    for (const auto &s : opts.calibration->data.samples) {
        lengths_.push_back(static_cast<uint64_t>(s.size()) * static_cast<uint64_t>(cfg_->hidden));
        offsets_.push_back(at);
        at += lengths_.back() * sizeof(float);
    }
    // Activations past half the limit cannot share memory with much else: to the file from the start.
    if (opts.max_host_memory > 0 && activation_bytes() > opts.max_host_memory / 2) open_spill();
    for (size_t i = 0; i < opts.calibration->data.samples.size(); ++i) {
        const auto &s = opts.calibration->data.samples[i];
        std::vector<float> h = embed_tokens(model, *cfg_, s.data(), static_cast<int64_t>(s.size()));
        if (spilled())
            write_at(offsets_[i], h.data(), h.size());
        else
            hidden_.push_back(std::move(h));
    }
    next_layer_ = 0;
    expert_tokens_.clear();
}

SequentialCalibration::~SequentialCalibration() { close_spill(); }

uint64_t SequentialCalibration::activation_bytes() const {
    uint64_t n = 0;
    for (uint64_t values : lengths_) n += values;
    return n * sizeof(float);
}

void SequentialCalibration::open_spill() {
    spill_fd_ = open_unlinked_temp_file("ktq-activations-", &spill_name_);
    if (spill_fd_ < 0)
        fail(KTQ_ERR_IO, spill_name_ + ": cannot create the file for the calibration activations (" +
                             std::strerror(errno) + "); set TMPDIR to a folder with " +
                             std::to_string((activation_bytes() >> 20) + 1) + " MiB free, or raise the memory limit");
}

void SequentialCalibration::spill() {
    open_spill();
    for (size_t i = 0; i < hidden_.size(); ++i) {
        write_at(offsets_[i], hidden_[i].data(), hidden_[i].size());
        std::vector<float>().swap(hidden_[i]);  // its memory goes back now
    }
    hidden_.clear();
}

void SequentialCalibration::close_spill() {
    if (spill_fd_ >= 0) ::close(spill_fd_);
    spill_fd_ = -1;
}

void SequentialCalibration::write_at(uint64_t offset, const float *v, size_t n) const {
    const char *p = reinterpret_cast<const char *>(v);
    size_t left = n * sizeof(float);
    while (left > 0) {
        const ssize_t w = ::pwrite(spill_fd_, p, left, static_cast<off_t>(offset));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            fail(KTQ_ERR_IO, spill_name_ + " (deleted temporary file of the calibration activations): write failed (" +
                                 std::string(w < 0 ? std::strerror(errno) : "no space") +
                                 "); set TMPDIR to a folder with more free space");
        p += w;
        offset += static_cast<uint64_t>(w);
        left -= static_cast<size_t>(w);
    }
}

void SequentialCalibration::read_at(uint64_t offset, float *v, size_t n) const {
    char *p = reinterpret_cast<char *>(v);
    size_t left = n * sizeof(float);
    while (left > 0) {
        const ssize_t r = ::pread(spill_fd_, p, left, static_cast<off_t>(offset));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            fail(KTQ_ERR_IO, spill_name_ + " (deleted temporary file of the calibration activations): read failed (" +
                                 std::string(r < 0 ? std::strerror(errno) : "short file") + ")");
        p += r;
        offset += static_cast<uint64_t>(r);
        left -= static_cast<size_t>(r);
    }
}

void check_moe_calibration_options(const ktq_quantize_options &opts) {
    if (opts.moe_hessian != KTQ_MOE_HESSIAN_BLEND && opts.moe_hessian != KTQ_MOE_HESSIAN_ALL)
        fail(KTQ_ERR_INVALID_ARGUMENT, "unknown moe_hessian " + std::to_string(static_cast<int>(opts.moe_hessian)) +
                                           " (KTQ_MOE_HESSIAN_BLEND or KTQ_MOE_HESSIAN_ALL)");
    if (!(opts.moe_all_tokens_weight >= 0) || !std::isfinite(opts.moe_all_tokens_weight))
        fail(KTQ_ERR_INVALID_ARGUMENT, "moe_all_tokens_weight must be a finite number >= 0, not " +
                                           std::to_string(opts.moe_all_tokens_weight));
}

uint64_t layer_float_bytes(LayerWeights &w) {
    uint64_t n = w.router.w.size() + w.shared_gate.w.size();
    for (Linear *l : w.quantizable()) n += l->w.size() + l->b.size();
    return n * sizeof(float);
}

uint64_t SequentialCalibration::batch_bytes(int batch) const {
    uint64_t longest = 0;
    for (uint64_t n : lengths_) longest = std::max(longest, n / static_cast<uint64_t>(cfg_->hidden));
    const uint64_t seqs = std::min<uint64_t>(static_cast<uint64_t>(std::max(1, batch)), lengths_.size());
    const uint64_t t = seqs * longest, H = static_cast<uint64_t>(cfg_->hidden);
    const uint64_t width = std::max<uint64_t>(static_cast<uint64_t>(std::max(cfg_->intermediate, 0)),
                                              static_cast<uint64_t>(std::max(cfg_->moe_intermediate, 0)));
    const uint64_t heads = static_cast<uint64_t>(cfg_->heads), hd = static_cast<uint64_t>(cfg_->head_dim);
    return sizeof(float) * (t * (6 * H + 3 * width + 3 * heads * hd) + seqs * heads * longest * longest);
}

void SequentialCalibration::check_layer_memory(const ktq_quantize_options &opts, const char *engine, int layer,
                                               const std::vector<std::pair<std::string, uint64_t>> &parts) {
    if (opts.max_host_memory == 0) return;
    uint64_t total = 0;
    std::string list;
    auto add = [&](const std::string &name, uint64_t bytes) {
        total += bytes;
        list += (list.empty() ? "" : ", ") + name + " " + std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB";
    };
    for (const auto &[name, bytes] : parts) add(name, bytes);
    if (!spilled() && total + activation_bytes() > opts.max_host_memory && total <= opts.max_host_memory) spill();
    if (total > opts.max_host_memory)
        fail(KTQ_ERR_NO_MEMORY, std::string(engine) + " needs about " + std::to_string(total >> 20) +
                                    " MiB of host memory for layer " + std::to_string(layer) + " (" + list +
                                    ") but the limit is " + std::to_string(opts.max_host_memory >> 20) +
                                    " MiB: use fewer calibration tokens (--num-calibration-samples, "
                                    "--max-sequence-length), smaller batches (--calibration-batch) or a higher limit");
}

void SequentialCalibration::for_each_batch(int batch, bool keep,
                                           const std::function<void(float *, int64_t, int64_t)> &fn) {
    const int64_t H = cfg_->hidden;
    std::vector<float> buf;
    for (size_t i = 0; i < lengths_.size();) {
        size_t j = i + 1;
        while (j < lengths_.size() && j - i < static_cast<size_t>(std::max(1, batch)) && lengths_[j] == lengths_[i])
            ++j;
        const size_t n = lengths_[i];
        buf.resize(n * (j - i));
        for (size_t k = i; k < j; ++k) {
            if (spilled())
                read_at(offsets_[k], buf.data() + (k - i) * n, n);
            else
                std::copy(hidden_[k].begin(), hidden_[k].end(), buf.begin() + (k - i) * n);
        }
        fn(buf.data(), static_cast<int64_t>(j - i), static_cast<int64_t>(n) / H);
        if (keep)
            for (size_t k = i; k < j; ++k) {
                if (spilled())
                    write_at(offsets_[k], buf.data() + (k - i) * n, n);
                else
                    std::copy(buf.begin() + (k - i) * n, buf.begin() + (k - i + 1) * n, hidden_[k].begin());
            }
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
    for (uint64_t n : lengths_) tokens += n / static_cast<uint64_t>(cfg_->hidden);
    return tokens;
}

nlohmann::ordered_json SequentialCalibration::activations_report() const {
    return {{"bytes", activation_bytes()}, {"in_temporary_file", spilled()}};
}

nlohmann::ordered_json SequentialCalibration::routing_stats(const char *pass) const {
    nlohmann::ordered_json stats;
    stats["description"] = std::string("routed calibration tokens per expert, per MoE layer (ktq ") + pass +
                           " calibration pass)";
    stats["samples"] = samples();
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
        if (writes_gguf(writer, layer))
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
