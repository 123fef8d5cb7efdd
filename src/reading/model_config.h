// ModelConfig - what ktq needs from a checkpoint's config.json.
//
// Accepts both styles found on the hub: transformers 5 (`dtype`,
// `rope_parameters`) and older (`torch_dtype`, `rope_theta`), and configs of
// multimodal wrappers whose language model lives under `text_config`.
// The field names for the same idea differ per architecture (experts are
// n_routed_experts, num_experts or num_local_experts); each is resolved here
// once, so nothing downstream looks at raw JSON keys.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ktq {

struct QuantizationConfig {
    std::string quant_method;          // "" when absent
    std::string fmt;                   // fp8: "e4m3" / "e5m2"
    int block_rows = 0, block_cols = 0;  // fp8 weight_block_size
};

struct ModelConfig {
    nlohmann::ordered_json raw;        // the whole file, key order kept
    std::string architecture;          // architectures[0]
    std::string model_type;            // of the text model
    bool has_text_config = false;

    int num_layers = 0;
    int hidden_size = 0;
    int intermediate_size = 0;
    int moe_intermediate_size = 0;
    int num_experts = 0;               // routed experts; 0 = dense
    int experts_per_token = 0;
    int first_k_dense_replace = -1;    // -1 = not given
    int decoder_sparse_step = 0;       // 0 = not given
    std::vector<int> mlp_only_layers;
    int num_shared_experts = -1;       // -1 = not given
    int shared_expert_intermediate_size = 0;
    int vocab_size = 0;
    std::string dtype;                 // "bfloat16", ... ("" if not given)
    double rope_theta = 0.0;           // 0 = not given
    QuantizationConfig quantization;

    // The language model's keys: raw["text_config"] when there is one, else raw.
    const nlohmann::ordered_json &text() const { return has_text_config ? raw.at("text_config") : raw; }

    // Parses `text` (the contents of `display`, used in error messages).
    static ModelConfig parse(const std::string &text, const std::string &display);
    static ModelConfig load(const std::string &path, const std::string &display);
};

}  // namespace ktq
