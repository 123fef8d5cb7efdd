#include "writers/gguf_mix.h"

#include <cstdio>

#include "quant/ggml_blocks.h"

namespace ktq::gguf_mix {

namespace {

// llama.cpp's llama_ftype numbers of the mixtures ktq writes.
const Mix kMixes[] = {
    {"Q4_0", KTQ_GGML_Q4_0, 2},     {"Q4_1", KTQ_GGML_Q4_1, 3},     {"Q8_0", KTQ_GGML_Q8_0, 7},
    {"Q5_0", KTQ_GGML_Q5_0, 8},     {"Q5_1", KTQ_GGML_Q5_1, 9},     {"Q2_K", KTQ_GGML_Q2_K, 10},
    {"Q3_K_S", KTQ_GGML_Q3_K, 11},  {"Q3_K_M", KTQ_GGML_Q3_K, 12},  {"Q3_K_L", KTQ_GGML_Q3_K, 13},
    {"Q4_K_S", KTQ_GGML_Q4_K, 14},  {"Q4_K_M", KTQ_GGML_Q4_K, 15},  {"Q5_K_S", KTQ_GGML_Q5_K, 16},
    {"Q5_K_M", KTQ_GGML_Q5_K, 17},  {"Q6_K", KTQ_GGML_Q6_K, 18},
    // ktq's MoE mixtures: file type of the experts' K type in its _M flavour.
    {"MOE_Q2_K", KTQ_GGML_Q2_K, 10, true}, {"MOE_Q3_K", KTQ_GGML_Q3_K, 12, true},
    {"MOE_Q4_K", KTQ_GGML_Q4_K, 15, true}, {"MOE_Q5_K", KTQ_GGML_Q5_K, 17, true},
    {"MOE_Q6_K", KTQ_GGML_Q6_K, 18, true},
};

enum class Category { Output, TokenEmbd, AttnQkv, AttnKvB, AttnV, AttnK, AttnQ, AttnOutput, FfnUp, FfnGate, FfnDown, Other };

bool has(const std::string &s, const char *part) { return s.find(part) != std::string::npos; }

// llama.cpp's tensor categories, by name, in its order of tests.
Category category_of(const std::string &n) {
    if (n == "output.weight") return Category::Output;
    if (n == "token_embd.weight") return Category::TokenEmbd;
    if (has(n, "attn_qkv.weight")) return Category::AttnQkv;
    if (has(n, "attn_kv_b.weight")) return Category::AttnKvB;
    if (has(n, "attn_v.weight")) return Category::AttnV;
    if (has(n, "attn_k.weight")) return Category::AttnK;
    if (has(n, "attn_q.weight")) return Category::AttnQ;
    if (has(n, "attn_output.weight")) return Category::AttnOutput;
    if (has(n, "ffn_up")) return Category::FfnUp;
    if (has(n, "ffn_gate")) return Category::FfnGate;
    if (has(n, "ffn_down")) return Category::FfnDown;
    return Category::Other;
}

bool attn_v_like(Category c) { return c == Category::AttnV || c == Category::AttnQkv || c == Category::AttnKvB; }

// The layers llama.cpp gives more bits in its _M mixtures: the first and last
// eighth, and every third layer in between.
bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// A routed expert's weight: stacked (blk.N.ffn_gate_exps.weight) or split
// per expert (blk.N.ffn_gate.E.weight).
bool is_routed_expert(const std::string &n) {
    if (has(n, "_exps.weight")) return true;
    int layer = 0, expert = 0, end = 0;
    char proj[8] = {};
    return std::sscanf(n.c_str(), "blk.%d.ffn_%7[a-z].%d.weight%n", &layer, proj, &expert, &end) == 3 &&
           static_cast<size_t>(end) == n.size();
}

int layer_of(const std::string &n) {
    int layer = -1;
    if (std::sscanf(n.c_str(), "blk.%d.", &layer) != 1) return -1;
    return layer;
}

ktq_ggml_type choose_llama(const Mix &mix, const ModelFacts &f, const std::string &name, int attn_v_index) {
    const std::string &m = mix.name;
    ktq_ggml_type t = mix.base;
    const Category c = category_of(name);
    const int gqa = f.kv_heads > 0 ? f.heads / f.kv_heads : 1;
    const bool eight_experts = f.experts == 8;
    // The output (or the embeddings it shares): Q6_K unless the file is Q8_0. (An output whose
    // rows do not fit the base type's block gets Q8_0 instead: see choose().)
    if (c == Category::Output || (!f.has_output && c == Category::TokenEmbd))
        return t == KTQ_GGML_Q8_0 ? t : KTQ_GGML_Q6_K;
    if (c == Category::TokenEmbd) return t;
    if (attn_v_like(c)) {
        if (m == "Q2_K") t = gqa >= 4 ? KTQ_GGML_Q4_K : KTQ_GGML_Q3_K;
        else if (m == "Q3_K_M") t = attn_v_index < 2 ? KTQ_GGML_Q5_K : KTQ_GGML_Q4_K;
        else if (m == "Q3_K_L") t = KTQ_GGML_Q5_K;
        else if ((m == "Q4_K_M" || m == "Q5_K_M") && more_bits(attn_v_index, f.attn_v_count)) t = KTQ_GGML_Q6_K;
        else if (m == "Q4_K_S" && attn_v_index < 4) t = KTQ_GGML_Q5_K;
        if (f.is_llama_70b && (t == KTQ_GGML_Q3_K || t == KTQ_GGML_Q4_K)) t = KTQ_GGML_Q5_K;
        if (eight_experts) t = KTQ_GGML_Q8_0;
        return t;
    }
    if (c == Category::AttnK) return eight_experts ? KTQ_GGML_Q8_0 : t;
    if (c == Category::FfnDown) {
        // Dense models count ffn_down weights in file order: one per layer, so the layer index.
        const int i = layer_of(name), n = f.layers;
        if (m == "Q2_K") t = KTQ_GGML_Q3_K;
        else if (m == "Q3_K_M") t = i < n / 16 ? KTQ_GGML_Q5_K : KTQ_GGML_Q4_K;
        else if (m == "Q3_K_L") t = KTQ_GGML_Q5_K;
        else if (m == "Q4_K_M") {
            if (more_bits(i, n)) t = KTQ_GGML_Q6_K;
        } else if (m == "Q5_K_M" && more_bits(i, n)) t = KTQ_GGML_Q6_K;
        else if (m == "Q4_K_S" && i < n / 8) t = KTQ_GGML_Q5_K;
        // With an imatrix llama-quantize guards the first eighth of ffn_down against Q4_0/Q5_0's failures.
        else if ((m == "Q4_0" || m == "Q5_0") && f.has_imatrix && i < n / 8)
            t = m == "Q4_0" ? KTQ_GGML_Q4_1 : KTQ_GGML_Q5_1;
        return t;
    }
    if (c == Category::AttnOutput) {
        if (eight_experts) {
            if (m == "Q2_K" || m == "Q3_K_S" || m == "Q3_K_M" || m == "Q4_K_S" || m == "Q4_K_M") t = KTQ_GGML_Q5_K;
        } else if (m == "Q2_K") t = KTQ_GGML_Q3_K;
        else if (m == "Q3_K_M") t = KTQ_GGML_Q4_K;
        else if (m == "Q3_K_L") t = KTQ_GGML_Q5_K;
        return t;
    }
    return t;
}

}  // namespace

std::optional<Mix> find(const std::string &name) {
    for (const Mix &m : kMixes)
        if (m.name == name) return m;
    return std::nullopt;
}

std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const Mix &m : kMixes) out.push_back(m.name);
    return out;
}

bool is_attn_v_like(const std::string &gguf_name) { return attn_v_like(category_of(gguf_name)); }

ktq_ggml_type fit_row(ktq_ggml_type wanted, uint64_t row_length) {
    auto fits = [&](ktq_ggml_type t) {
        const GgmlTypeTraits *tr = ggml_traits(t);
        return tr && row_length % tr->block_size == 0;
    };
    if (fits(wanted)) return wanted;
    ktq_ggml_type t = wanted;
    switch (wanted) {
    case KTQ_GGML_Q2_K:
    case KTQ_GGML_Q3_K: t = KTQ_GGML_Q4_0; break;
    case KTQ_GGML_Q4_K: t = KTQ_GGML_Q5_0; break;
    case KTQ_GGML_Q5_K: t = KTQ_GGML_Q5_1; break;
    case KTQ_GGML_Q6_K: t = KTQ_GGML_Q8_0; break;
    default: break;
    }
    return fits(t) ? t : KTQ_GGML_F16;
}

ktq_ggml_type choose(const Mix &mix, const ModelFacts &facts, const std::string &gguf_name, int attn_v_index,
                     uint64_t row_length) {
    ktq_ggml_type t;
    if (mix.moe) {
        t = is_routed_expert(gguf_name) ? mix.base : KTQ_GGML_Q8_0;
    } else {
        t = choose_llama(mix, facts, gguf_name, attn_v_index);
    }
    // llama.cpp sends an output whose rows do not fit the 256 block straight to Q8_0.
    const Category c = category_of(gguf_name);
    if (!mix.moe && (c == Category::Output || (!facts.has_output && c == Category::TokenEmbd))) {
        const GgmlTypeTraits *base = ggml_traits(mix.base);
        if (base && row_length % base->block_size != 0) t = KTQ_GGML_Q8_0;
    }
    return fit_row(t, row_length);
}

}  // namespace ktq::gguf_mix
