// The weights of one decoder layer in float32, as the forward pass and the
// calibration engines use them. Loaded from a Model one layer at a time
// (bounded memory), editable in place (GPTQ writes quantized-dequantized
// weights back before the layer's outputs are recomputed).
#pragma once

#include <string>
#include <vector>

#include "forward/forward_config.h"
#include "reading/model.h"

namespace ktq {

struct Linear {
    std::string name;      // module name: the weight tensor's name without ".weight"
    int64_t out = 0, in = 0;
    std::vector<float> w;  // [out, in]
    std::vector<float> b;  // [out], or empty
    bool empty() const { return w.empty(); }
};

struct ExpertWeights {
    Linear gate, up, down;
};

struct LayerWeights {
    int layer = 0;
    std::vector<float> input_norm, post_norm;
    // Standard attention (q_norm / k_norm: Qwen3's per-head RMSNorm, else empty).
    Linear q, k, v, o;
    std::vector<float> q_norm, k_norm;
    // DeepSeek MLA (q is used instead of q_a/q_b when q_lora_rank is 0).
    Linear q_a, q_b, kv_a, kv_b;
    std::vector<float> q_a_norm, kv_a_norm;
    // Dense MLP.
    Linear gate, up, down;
    // MoE.
    bool moe = false;
    Linear router;
    std::vector<float> router_bias;  // DeepSeek's e_score_correction_bias
    std::vector<ExpertWeights> experts;
    bool has_shared = false;
    ExpertWeights shared;
    Linear shared_gate;              // Qwen2-MoE: sigmoid gate of the shared expert, [1, hidden]

    // Every Linear of the layer a weight quantizer may touch, in module order
    // (routers excluded).
    std::vector<Linear *> quantizable();
};

LayerWeights load_layer(const Model &model, const ForwardConfig &cfg, int layer);
// A 1-D (or any) tensor as float32; empty when `required` is false and it is absent.
std::vector<float> load_vector(const Model &model, const std::string &tensor, bool required = true);
Linear load_linear(const Model &model, const std::string &module, bool required = true);

}  // namespace ktq
