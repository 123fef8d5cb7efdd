// ForwardConfig - what the native forward pass needs to know about a
// checkpoint: sizes, attention kind (standard GQA or DeepSeek MLA), RoPE,
// router rules, and where the tensors are. Resolved once from config.json
// and the tensor names, so the forward code never looks at raw JSON.
#pragma once

#include <string>
#include <vector>

#include "reading/model.h"

namespace ktq {

enum class RouterKind {
    SoftmaxTopK,     // softmax over all experts, top-k (Mixtral, Qwen2/3-MoE)
    SigmoidGrouped,  // sigmoid, bias-corrected group-limited top-k (DeepSeek-V3)
};

struct ForwardConfig {
    std::string family;  // model_type
    int hidden = 0, layers = 0, vocab = 0;
    int heads = 0, kv_heads = 0, head_dim = 0;
    float rms_eps = 1e-6f;
    int intermediate = 0;  // dense MLP width

    // RoPE, as transformers computes it for rope types default, linear,
    // llama3 and yarn (forward/rope_scaling.h); other types fail by name
    // rather than computing something else.
    double rope_theta = 10000.0;
    bool rope_interleave = false;  // DeepSeek: pairs (x0,x1),(x2,x3),...
    std::vector<float> rope_inv_freq;  // [rotary dim / 2]: head_dim, or MLA's qk_rope_head_dim
    float rope_attention_factor = 1.0f;  // cos and sin are multiplied by it (yarn)
    float softmax_scale_factor = 1.0f;   // DeepSeek with a scaled rope: yarn's mscale(mscale_all_dim)^2

    // DeepSeek multi-head latent attention (mla == true).
    bool mla = false;
    int q_lora_rank = 0;  // 0 = plain q_proj
    int kv_lora_rank = 0, qk_nope_dim = 0, qk_rope_dim = 0, v_head_dim = 0;

    // Mixture of experts.
    int num_experts = 0, top_k = 0, moe_intermediate = 0;
    bool norm_topk_prob = false;
    RouterKind router = RouterKind::SoftmaxTopK;
    int n_group = 1, topk_group = 1;
    float routed_scaling_factor = 1.0f;
    std::vector<bool> moe_layer;  // per decoder layer

    // Tensor names.
    std::string prefix;      // "model." (before "layers.N.", "embed_tokens", "norm")
    std::string lm_head;     // "lm_head.weight", or the embedding when tied

    static ForwardConfig resolve(const Model &model);
    std::string layer_prefix(int layer) const { return prefix + "layers." + std::to_string(layer) + "."; }
};

}  // namespace ktq
