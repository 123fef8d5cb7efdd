// Resolves ForwardConfig from config.json (either style) and tensor names.
#include "forward/forward_config.h"

#include "forward/rope_scaling.h"
#include "runtime/error.h"

namespace ktq {

namespace {

using nlohmann::ordered_json;

template <typename T>
T get_or(const ordered_json &j, const char *key, T fallback) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    return it->get<T>();
}

}  // namespace

ForwardConfig ForwardConfig::resolve(const Model &model) {
    const ModelConfig &mc = model.config();
    const ordered_json &j = mc.has_text_config ? mc.raw.at("text_config") : mc.raw;
    const std::string where = model.checkpoint().dir() + "/config.json";
    ForwardConfig c;
    c.family = mc.model_type;
    static const char *const kSupported[] = {"llama", "mistral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe",
                                             "mixtral", "deepseek_v3", "deepseek_v2"};
    bool known = false;
    for (const char *s : kSupported) known = known || c.family == s;
    if (!known)
        fail(KTQ_ERR_UNSUPPORTED, where + ": model_type \"" + c.family +
                                      "\" has no native forward pass (supported: llama, mistral, qwen2, qwen3, "
                                      "qwen2_moe, qwen3_moe, mixtral, deepseek_v2, deepseek_v3)");
    try {
        c.hidden = mc.hidden_size;
        c.layers = mc.num_layers;
        c.vocab = mc.vocab_size;
        c.intermediate = mc.intermediate_size;
        c.heads = get_or<int>(j, "num_attention_heads", 0);
        c.kv_heads = get_or<int>(j, "num_key_value_heads", c.heads);
        c.head_dim = get_or<int>(j, "head_dim", c.heads ? c.hidden / c.heads : 0);
        c.rms_eps = static_cast<float>(get_or<double>(j, "rms_norm_eps", 1e-6));
        c.rope_theta = mc.rope_theta > 0 ? mc.rope_theta : 10000.0;
        const ordered_json *rope_params = rope_parameters(j);
        c.rope_interleave = get_or<bool>(j, "rope_interleave", false);
        if (c.family == "deepseek_v3" || c.family == "deepseek_v2") {
            c.mla = true;
            c.q_lora_rank = get_or<int>(j, "q_lora_rank", 0);
            c.kv_lora_rank = get_or<int>(j, "kv_lora_rank", 0);
            c.qk_nope_dim = get_or<int>(j, "qk_nope_head_dim", 0);
            c.qk_rope_dim = get_or<int>(j, "qk_rope_head_dim", 0);
            c.v_head_dim = get_or<int>(j, "v_head_dim", 0);
            c.n_group = get_or<int>(j, "n_group", 1);
            c.topk_group = get_or<int>(j, "topk_group", 1);
            c.routed_scaling_factor = static_cast<float>(get_or<double>(j, "routed_scaling_factor", 1.0));
            const std::string scoring = get_or<std::string>(j, "scoring_func", "sigmoid");
            const std::string method = get_or<std::string>(j, "topk_method", "noaux_tc");
            if (c.family == "deepseek_v2" || scoring != "sigmoid" || method != "noaux_tc")
                fail(KTQ_ERR_UNSUPPORTED, where + ": DeepSeek routing scoring_func \"" + scoring + "\" / topk_method \"" +
                                              method + "\" is not implemented (only DeepSeek-V3's sigmoid + noaux_tc)");
            c.router = RouterKind::SigmoidGrouped;
            if (c.kv_lora_rank <= 0 || c.qk_rope_dim <= 0 || c.v_head_dim <= 0 || c.qk_nope_dim <= 0)
                fail(KTQ_ERR_FORMAT, where + ": MLA sizes (kv_lora_rank, qk_nope/rope_head_dim, v_head_dim) missing");
        }
        const int rotary_dim = c.mla ? c.qk_rope_dim : c.head_dim;
        if (rotary_dim > 0) {  // else the size check below names what is missing
            const RopeFrequencies rope = rope_frequencies(rope_params, j, rotary_dim, c.rope_theta, where);
            c.rope_inv_freq = rope.inv_freq;
            c.rope_attention_factor = rope.attention_factor;
            // transformers' DeepSeek attention multiplies its softmax scale by mscale(factor, mscale_all_dim)^2
            // whenever the rope is scaled and mscale_all_dim is set.
            if (c.mla && rope.type != "default" && rope.mscale_all_dim != 0) {
                const double m = yarn_mscale(rope.factor, rope.mscale_all_dim);
                c.softmax_scale_factor = static_cast<float>(m * m);
            }
        }
        c.num_experts = mc.num_experts;
        c.top_k = mc.experts_per_token;
        c.moe_intermediate = mc.moe_intermediate_size > 0 ? mc.moe_intermediate_size : mc.intermediate_size;
        c.norm_topk_prob = c.family == "mixtral" ? true : get_or<bool>(j, "norm_topk_prob", false);
    } catch (const nlohmann::json::exception &e) {
        fail(KTQ_ERR_FORMAT, where + ": " + e.what());
    }
    if (c.hidden <= 0 || c.layers <= 0 || c.vocab <= 0 || c.heads <= 0 || c.kv_heads <= 0 || c.head_dim <= 0 ||
        c.heads % c.kv_heads != 0)
        fail(KTQ_ERR_FORMAT, where + ": hidden_size, num_hidden_layers, vocab_size, num_attention_heads, "
                                     "num_key_value_heads or head_dim missing or inconsistent");
    const Architecture &arch = model.arch();
    c.moe_layer.assign(static_cast<size_t>(c.layers), false);
    for (int l = 0; l < c.layers && l < static_cast<int>(arch.layers.size()); ++l)
        c.moe_layer[static_cast<size_t>(l)] = arch.layers[static_cast<size_t>(l)].storage != KTQ_EXPERTS_NONE;
    if (c.num_experts > 0 && (c.top_k <= 0 || c.top_k > c.num_experts || c.num_experts % c.n_group != 0 ||
                              c.topk_group > c.n_group))
        fail(KTQ_ERR_FORMAT, where + ": num_experts_per_tok / n_group / topk_group inconsistent with the expert count");
    // Tensor prefix from the embedding's name.
    const Checkpoint &ck = model.checkpoint();
    for (const std::string &n : ck.names()) {
        const std::string tail = "embed_tokens.weight";
        if (n.size() >= tail.size() && n.compare(n.size() - tail.size(), tail.size(), tail) == 0) {
            c.prefix = n.substr(0, n.size() - tail.size());
            break;
        }
    }
    if (c.prefix.empty() && !ck.find("embed_tokens.weight"))
        fail(KTQ_ERR_FORMAT, model.checkpoint().dir() + ": no *embed_tokens.weight tensor");
    c.lm_head = ck.find("lm_head.weight") ? "lm_head.weight" : c.prefix + "embed_tokens.weight";
    if (!ck.find("lm_head.weight") && !get_or<bool>(j, "tie_word_embeddings", false))
        fail(KTQ_ERR_FORMAT, model.checkpoint().dir() + ": no lm_head.weight and tie_word_embeddings is false");
    return c;
}

}  // namespace ktq
