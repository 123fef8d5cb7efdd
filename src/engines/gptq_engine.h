// GptqEngine - GPTQ into the compressed-tensors layout, calibrated with
// ktq's own forward pass, sequentially as llm-compressor's sequential
// pipeline (engines/sequential_calibration.h). Per layer:
//   1. forward with an observer: a Hessian per quantized Linear (every
//      routed expert sees all tokens: all-experts calibration, so an expert
//      the router never picks is still calibrated; by default its Hessian
//      blends its routed tokens with all tokens, see ktq_moe_hessian; the
//      layer's output follows the router), routed-token counts per expert;
//   2. GPTQ per Linear (quant/gptq.h), codes/scales/zero points written;
//   3. forward again with the quantized weights: the next layer's inputs.
// The engine keeps the activations between layers, so it lives as long as
// its writer. Writes routing_stats.json (tokens per expert per layer) and
// gptq_report.json (loss and fallbacks per module) next to the weights.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "engines/engine.h"
#include "engines/sequential_calibration.h"

namespace ktq {

class GptqEngine : public SequentialEngine {
public:
    // cuda: Hessian sums and the routed experts' all-token pass on the first
    // CUDA device of ktq_quantize_options.devices (within max_device_memory),
    // the GPTQ solve batched over each layer's same-shape Linears and spread
    // over the devices (cuda/gptq_cuda.h); the rest of the calibration
    // forward stays on the CPU (see process()).
    explicit GptqEngine(bool cuda = false) : cuda_(cuda) {}
    const char *name() const override { return "gptq"; }

private:
    const char *label() const override { return "GPTQ"; }
    void restart() override { report_.clear(); }
    void process(const Model &model, int layer, Writer &writer, ThreadPool &pool, const ktq_quantize_options &opts,
                 const TensorDoneFn &on_tensor, bool write) override;
    void record(Writer &writer) const;

    bool cuda_ = false;
    struct ModuleReport {
        double loss = 0;
        bool rtn_fallback = false;
        uint64_t rows_seen = 0;    // all calibration tokens that reached the module
        uint64_t rows_routed = 0;  // routed experts: the tokens the router sent it (else rows_seen)
    };
    std::map<std::string, ModuleReport> report_;
};

}  // namespace ktq
