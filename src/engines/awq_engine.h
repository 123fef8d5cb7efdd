// AwqEngine - AWQ into the compressed-tensors layout, calibrated with ktq's
// own forward pass, layer by layer as the GPTQ engine
// (engines/sequential_calibration.h). Per decoder layer:
//   1. forward with a recorder: the inputs of each group of Linears that
//      read the same activations (input norm -> q/k/v or MLA's q_a/kv_a;
//      MLA's q_a_layernorm -> q_b, kv_a_layernorm -> kv_b; attention output
//      -> o; post-attention norm -> the dense gate/up, or every routed
//      expert's gate/up (all tokens: all-experts calibration) and the shared
//      expert's; each down's input);
//   2. the mappings in llm-compressor's order, each a grid search over
//      per-channel scales (quant/awq.h) against the output error of the
//      mapping's parent (as llm-compressor: the attention block for q/k/v,
//      the MLP or whole MoE block, router included, for gate/up, the Linear
//      itself for o and down), folded into what precedes the group:
//        input_layernorm     -> q, k, v        (MLA: q_a or q, kv_a)
//        q_a_layernorm       -> q_b            kv_a_layernorm -> kv_b
//        v                   -> o              (only when v's outputs are o's inputs: no GQA)
//        post_attention_norm -> gate, up       (MoE: all experts + shared expert; the router and
//                                               Qwen2-MoE's shared_expert_gate take the scales
//                                               too, so routing is unchanged)
//        up                  -> down           (each expert with its own scales; routed experts: by
//                                               default the error on the tokens routed to the expert
//                                               plus moe_all_tokens_weight x the error on all tokens,
//                                               see ktq_moe_hessian)
//      A mapping none of whose Linears the plan quantizes is skipped;
//   3. with awq_clip, AutoAWQ's clipping search per quantized Linear but q/k
//      (quant/awq.h awq::clip), with the inputs the folded weights read;
//   4. round-to-nearest of every quantized Linear (the RTN engine's
//      quantizer) on the scaled weights; the scaled norms, routers and kept
//      Linears are written in the model's dtype;
//   5. forward again with what was written: the next layer's inputs.
// Writes awq_report.json (the chosen ratio and losses per mapping) and
// routing_stats.json next to the weights.
//
// With cuda, every Linear product of steps 1, 2 and 5 (the calibration
// forward, each candidate's parent forward, the Linear losses) runs with
// cuBLAS in float32 on the first device of ktq_quantize_options.devices
// (cuda/cuda_matmul.h); searches, folds and quantization stay on the CPU.
// Rounding differs from the CPU's products, so a near-tie between two grid
// points may go the other way (docs/awq.md gives the measured agreement).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "engines/engine.h"
#include "engines/sequential_calibration.h"
#include "forward/matmul.h"
#include "quant/awq.h"

namespace ktq {

class AwqEngine : public SequentialEngine {
public:
    explicit AwqEngine(bool cuda = false) : cuda_(cuda) {}
    const char *name() const override { return "awq"; }

private:
    const char *label() const override { return "AWQ"; }
    void restart() override {
        report_.clear();
        clipped_.clear();
        recorded_to_file_.clear();
    }
    void process(const Model &model, int layer, Writer &writer, ThreadPool &pool, const ktq_quantize_options &opts,
                 const TensorDoneFn &on_tensor, bool write) override;
    void record(Writer &writer) const;

    struct MappingReport {
        int ratio_index = 0;
        double ratio = 0;
        bool duo = false;
        double loss = 0, loss_unscaled = 0;
        uint64_t rows = 0;
        int64_t routed_rows = -1;  // a routed expert's down with blended calibration: its routed tokens
        size_t order = 0;  // the mappings' processing order, for the report
    };
    // The CUDA products (cuda_): made at the first layer, kept for the run.
    MatmulBackend *gpu(const ktq_quantize_options &opts);
    bool cuda_ = false;
    std::unique_ptr<MatmulBackend> gpu_;
    std::map<std::string, MappingReport> report_;  // by mapping name ("model.layers.0.input_layernorm -> ...")
    std::map<std::string, uint64_t> clipped_;      // by Linear: (row, group) pairs the clipping search clipped
    std::set<int> recorded_to_file_;               // layers whose recorded inputs a memory limit sent to files
};

}  // namespace ktq
