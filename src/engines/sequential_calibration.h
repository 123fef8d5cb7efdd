// The calibration state the sequential engines (GPTQ, AWQ) share: the
// activations of every calibration sample at the input of the next layer to
// process, and the routed-token counts per expert seen so far. Layer L's
// inputs come from layers 0..L-1 as the engine left them (quantized), as
// llm-compressor's sequential pipeline computes them. An engine asked for a
// layer past the next one (a resumed run) recomputes the layers in between
// without writing them: same inputs, same bytes.
//
// With a host memory limit (ktq_quantize_options.max_host_memory) the
// activations move to an unlinked temporary file when they would take more
// than half of it, and each batch is read and written back in turn; every
// layer's own needs are checked against the limit before it runs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "engines/engine.h"
#include "forward/forward_config.h"
#include "ktq/writer.h"

namespace ktq {

class Model;
struct LayerWeights;

// Bytes of a layer's Linears (and router) held as float32.
uint64_t layer_float_bytes(LayerWeights &w);

// Throws KTQ_ERR_INVALID_ARGUMENT for an unknown moe_hessian or a
// moe_all_tokens_weight that is not a finite number >= 0 (GPTQ and AWQ read both).
void check_moe_calibration_options(const ktq_quantize_options &opts);

class SequentialCalibration {
public:
    SequentialCalibration() = default;
    SequentialCalibration(const SequentialCalibration &) = delete;
    SequentialCalibration &operator=(const SequentialCalibration &) = delete;
    // True when the state does not hold the inputs of `layer` or an earlier
    // one for these options (first call, other calibration data, a layer
    // already passed): start() again.
    bool needs_start(const ktq_quantize_options &opts, int layer) const;
    // Embeds every sample; `engine` names the caller in the error when there
    // is no calibration data.
    void start(const Model &model, const ktq_quantize_options &opts, const char *engine);

    const ForwardConfig &cfg() const { return *cfg_; }
    ~SequentialCalibration();

    // Before a layer runs: when `parts` (what the engine holds for it: name,
    // bytes) plus the activations kept in memory exceed
    // opts.max_host_memory, the activations move to the temporary file; if
    // `parts` alone exceed it, fails with KTQ_ERR_NO_MEMORY naming them
    // (no limit: nothing checked).
    void check_layer_memory(const ktq_quantize_options &opts, const char *engine, int layer,
                            const std::vector<std::pair<std::string, uint64_t>> &parts);
    // What one forward batch of `batch` samples holds at its peak (inputs,
    // attention scores, MLP intermediates; an estimate).
    uint64_t batch_bytes(int batch) const;
    // True when the activations live in the temporary file.
    bool spilled() const { return spill_fd_ >= 0; }
    int next_layer() const { return next_layer_; }
    void finished(int layer) { next_layer_ = layer + 1; }

    // Runs fn over the activations in batches of at most `batch` consecutive
    // samples of equal length (contiguous copies: x [seqs * len, hidden]);
    // with keep, what fn leaves in x replaces them.
    void for_each_batch(int batch, bool keep, const std::function<void(float *x, int64_t seqs, int64_t len)> &fn);

    // The counter the calibration forward adds routed tokens to, zeroed.
    std::vector<uint64_t> &expert_tokens(int layer);
    // routing_stats.json: tokens per expert per MoE layer seen so far.
    nlohmann::ordered_json routing_stats(const char *pass) const;
    // For the engines' reports: the activations' size and whether --max-cpu-memory moved them to the
    // temporary file (the file is unlinked at once, so the report is where a user sees it happened).
    nlohmann::ordered_json activations_report() const;
    size_t samples() const { return lengths_.size(); }
    uint64_t tokens() const;

private:
    std::unique_ptr<ForwardConfig> cfg_;
    const ktq_calibration *calibration_ = nullptr;
    int next_layer_ = 0;                                  // the layer whose inputs hidden_ holds
    std::vector<std::vector<float>> hidden_;              // per sample: [tokens, hidden] (empty when spilled)
    std::vector<uint64_t> lengths_;                       // per sample: tokens * hidden values
    std::vector<uint64_t> offsets_;                       // per sample: byte offset in the file (when spilled)
    int spill_fd_ = -1;                                   // the temporary file, or -1
    std::string spill_name_;                              // for messages
    void close_spill();
    void open_spill();
    uint64_t activation_bytes() const;  // of every sample
    void spill();  // moves the in-memory activations to the file
    void write_at(uint64_t offset, const float *v, size_t n) const;
    void read_at(uint64_t offset, float *v, size_t n) const;
    std::map<int, std::vector<uint64_t>> expert_tokens_;  // layer -> routed tokens per expert
};

// An engine that calibrates layer by layer on SequentialCalibration: it
// keeps the globals as they are, (re)starts the calibration when needed,
// recomputes skipped layers without writing them (a resumed run), then
// processes the layer asked for.
class SequentialEngine : public Engine {
public:
    void run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool, const ktq_quantize_options &opts,
                   const TensorDoneFn &on_tensor) final;

protected:
    // "GPTQ", "AWQ": names the engine in messages.
    virtual const char *label() const = 0;
    // The calibration restarts: forget what was reported so far.
    virtual void restart() {}
    // One decoder layer: calibrate, quantize, write (when `write`), and leave
    // the next layer's inputs in cal_.
    virtual void process(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                         const ktq_quantize_options &opts, const TensorDoneFn &on_tensor, bool write) = 0;

    SequentialCalibration cal_;
};

}  // namespace ktq
