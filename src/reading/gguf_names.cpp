#include "reading/gguf_names.h"

#include <regex>
#include <utility>
#include <vector>

namespace ktq {

std::string gguf_tensor_name(const std::string &hf) {
    static const std::vector<std::pair<std::regex, std::string>> rules = [] {
        std::vector<std::pair<std::regex, std::string>> r;
        auto add = [&](const char *re, const char *to) { r.emplace_back(std::regex(re), to); };
        add(R"(^model\.embed_tokens\.weight$)", "token_embd.weight");
        add(R"(^model\.norm\.weight$)", "output_norm.weight");
        add(R"(^lm_head\.weight$)", "output.weight");
        add(R"(^model\.layers\.(\d+)\.input_layernorm\.weight$)", "blk.$1.attn_norm.weight");
        add(R"(^model\.layers\.(\d+)\.post_attention_layernorm\.weight$)", "blk.$1.ffn_norm.weight");
        add(R"(^model\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)$)", "blk.$1.attn_q.$2");
        add(R"(^model\.layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)$)", "blk.$1.attn_k.$2");
        add(R"(^model\.layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)$)", "blk.$1.attn_v.$2");
        add(R"(^model\.layers\.(\d+)\.self_attn\.o_proj\.weight$)", "blk.$1.attn_output.weight");
        add(R"(^model\.layers\.(\d+)\.self_attn\.q_norm\.weight$)", "blk.$1.attn_q_norm.weight");
        add(R"(^model\.layers\.(\d+)\.self_attn\.k_norm\.weight$)", "blk.$1.attn_k_norm.weight");
        add(R"(^model\.layers\.(\d+)\.mlp\.gate_proj\.weight$)", "blk.$1.ffn_gate.weight");
        add(R"(^model\.layers\.(\d+)\.mlp\.up_proj\.weight$)", "blk.$1.ffn_up.weight");
        add(R"(^model\.layers\.(\d+)\.mlp\.down_proj\.weight$)", "blk.$1.ffn_down.weight");
        add(R"(^model\.layers\.(\d+)\.(mlp|block_sparse_moe)\.gate\.weight$)", "blk.$1.ffn_gate_inp.weight");
        // DeepSeek (deepseek2): MLA projections, the router's bias, shared experts.
        add(R"(^model\.layers\.(\d+)\.self_attn\.q_a_proj\.weight$)", "blk.$1.attn_q_a.weight");
        add(R"(^model\.layers\.(\d+)\.self_attn\.q_a_layernorm\.weight$)", "blk.$1.attn_q_a_norm.weight");
        add(R"(^model\.layers\.(\d+)\.self_attn\.q_b_proj\.weight$)", "blk.$1.attn_q_b.weight");
        add(R"(^model\.layers\.(\d+)\.self_attn\.kv_a_proj_with_mqa\.weight$)", "blk.$1.attn_kv_a_mqa.weight");
        add(R"(^model\.layers\.(\d+)\.self_attn\.kv_a_layernorm\.weight$)", "blk.$1.attn_kv_a_norm.weight");
        add(R"(^model\.layers\.(\d+)\.mlp\.gate\.e_score_correction_bias$)", "blk.$1.exp_probs_b.bias");
        add(R"(^model\.layers\.(\d+)\.mlp\.shared_experts?\.(gate|up|down)_proj\.weight$)", "blk.$1.ffn_$2_shexp.weight");
        // Qwen2-MoE: its shared expert's sigmoid gate.
        add(R"(^model\.layers\.(\d+)\.mlp\.shared_expert_gate\.weight$)", "blk.$1.ffn_gate_inp_shexp.weight");
        return r;
    }();
    for (const auto &[re, to] : rules)
        if (std::regex_match(hf, re)) return std::regex_replace(hf, re, to);
    return {};
}

}  // namespace ktq
