#include "reading/model_config.h"

#include <fstream>
#include <sstream>

#include "runtime/error.h"

namespace ktq {

namespace {

using Json = nlohmann::ordered_json;

// First integer among `keys` in `obj`; `fallback` if none. Non-integer values
// are an error: a config that says "num_experts": "16" is not one we guess at.
int int_field(const Json &obj, std::initializer_list<const char *> keys, int fallback,
              const std::string &display) {
    for (const char *key : keys) {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) continue;
        if (!it->is_number_integer())
            fail(KTQ_ERR_FORMAT, display + ": field '" + key + "' must be an integer, got " + it->dump());
        long long v = it->get<long long>();
        if (v < 0 || v > 1LL << 30)
            fail(KTQ_ERR_FORMAT, display + ": field '" + key + "' is out of range: " + it->dump());
        return static_cast<int>(v);
    }
    return fallback;
}

std::string string_field(const Json &obj, std::initializer_list<const char *> keys) {
    for (const char *key : keys) {
        auto it = obj.find(key);
        if (it != obj.end() && it->is_string()) return it->get<std::string>();
    }
    return "";
}

}  // namespace

ModelConfig ModelConfig::parse(const std::string &text, const std::string &display) {
    ModelConfig c;
    try {
        c.raw = Json::parse(text);
    } catch (const Json::exception &e) {
        fail(KTQ_ERR_FORMAT, display + ": not valid JSON: " + e.what());
    }
    if (!c.raw.is_object()) fail(KTQ_ERR_FORMAT, display + ": not a JSON object");

    auto archs = c.raw.find("architectures");
    if (archs != c.raw.end() && archs->is_array() && !archs->empty() && (*archs)[0].is_string())
        c.architecture = (*archs)[0].get<std::string>();

    // Multimodal wrappers (Qwen3.5-MoE, Kimi-VL, ...) nest the language model.
    const Json *text_cfg = &c.raw;
    auto tc = c.raw.find("text_config");
    if (tc != c.raw.end() && tc->is_object()) {
        text_cfg = &*tc;
        c.has_text_config = true;
    }
    const Json &t = *text_cfg;
    c.model_type = string_field(t, {"model_type"});
    if (c.model_type.empty()) c.model_type = string_field(c.raw, {"model_type"});

    c.num_layers = int_field(t, {"num_hidden_layers", "n_layer", "num_layers"}, 0, display);
    c.hidden_size = int_field(t, {"hidden_size", "d_model", "n_embd"}, 0, display);
    c.intermediate_size = int_field(t, {"intermediate_size", "ffn_hidden_size"}, 0, display);
    c.moe_intermediate_size = int_field(t, {"moe_intermediate_size", "expert_intermediate_size"}, 0, display);
    c.num_experts = int_field(t, {"n_routed_experts", "num_experts", "num_local_experts", "moe_num_experts"}, 0,
                              display);
    c.experts_per_token = int_field(t, {"num_experts_per_tok", "moe_topk", "top_k", "moe_k"}, 0, display);
    c.first_k_dense_replace = int_field(t, {"first_k_dense_replace"}, -1, display);
    c.decoder_sparse_step = int_field(t, {"decoder_sparse_step"}, 0, display);
    auto mlp_only = t.find("mlp_only_layers");
    if (mlp_only != t.end() && mlp_only->is_array())
        for (const auto &v : *mlp_only)
            if (v.is_number_integer()) c.mlp_only_layers.push_back(v.get<int>());
    c.num_shared_experts = int_field(t, {"n_shared_experts", "num_shared_experts"}, -1, display);
    c.shared_expert_intermediate_size = int_field(t, {"shared_expert_intermediate_size"}, 0, display);
    c.vocab_size = int_field(t, {"vocab_size"}, 0, display);
    c.dtype = string_field(t, {"dtype", "torch_dtype"});
    if (c.dtype.empty()) c.dtype = string_field(c.raw, {"dtype", "torch_dtype"});

    auto rope_params = t.find("rope_parameters");
    if (rope_params != t.end() && rope_params->is_object()) {
        auto theta = rope_params->find("rope_theta");
        if (theta != rope_params->end() && theta->is_number()) c.rope_theta = theta->get<double>();
    }
    auto theta = t.find("rope_theta");
    if (c.rope_theta == 0.0 && theta != t.end() && theta->is_number()) c.rope_theta = theta->get<double>();

    const Json *qc = nullptr;
    for (const Json *scope : std::initializer_list<const Json *>{&c.raw, &t}) {
        auto it = scope->find("quantization_config");
        if (it != scope->end() && it->is_object()) qc = &*it;
    }
    if (qc) {
        c.quantization.quant_method = string_field(*qc, {"quant_method"});
        c.quantization.fmt = string_field(*qc, {"fmt"});
        auto bs = qc->find("weight_block_size");
        if (bs != qc->end() && !bs->is_null()) {
            if (!bs->is_array() || bs->size() != 2 || !(*bs)[0].is_number_integer() ||
                !(*bs)[1].is_number_integer() || (*bs)[0].get<long long>() <= 0 || (*bs)[1].get<long long>() <= 0 ||
                (*bs)[0].get<long long>() > 1 << 20 || (*bs)[1].get<long long>() > 1 << 20)
                fail(KTQ_ERR_FORMAT, display + ": quantization_config.weight_block_size must be two positive "
                                               "integers, got " + bs->dump());
            c.quantization.block_rows = (*bs)[0].get<int>();
            c.quantization.block_cols = (*bs)[1].get<int>();
        }
    }
    return c;
}

ModelConfig ModelConfig::load(const std::string &path, const std::string &display) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(KTQ_ERR_NOT_FOUND, display + ": cannot open (" + path + ")");
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) fail(KTQ_ERR_IO, display + ": read error");
    return parse(ss.str(), display);
}

}  // namespace ktq
