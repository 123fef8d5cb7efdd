#include "writers/gguf_plan.h"

#include "forward/rope_scaling.h"

#include "reading/gguf_names.h"
#include "writers/gguf_mix.h"
#include "writers/gguf_tokenizer.h"
#include "reading/imatrix_file.h"

#include <algorithm>
#include <cmath>
#include <climits>
#include <cstdio>
#include <map>
#include <thread>
#include <optional>
#include <regex>

#include "quant/ggml_blocks.h"
#include "reading/dtype.h"
#include "runtime/error.h"
#include "runtime/file_hash.h"
#include "runtime/strings.h"

namespace ktq {

namespace {

// llama.cpp's architecture string for the families written so far.
std::string gguf_arch(const Model &model) {
    const std::string &t = model.config().model_type;
    if (t == "llama" || t == "mixtral" || t == "mistral") return "llama";
    if (t == "qwen2" || t == "qwen3") return t;
    if (t == "qwen3_moe") return "qwen3moe";
    if (t == "qwen2_moe") return "qwen2moe";  // shared expert with a sigmoid gate
    if (t == "deepseek_v3") return "deepseek2";  // llama.cpp's MLA architecture
    fail(KTQ_ERR_UNSUPPORTED, model.checkpoint().dir() + ": GGUF export of model_type '" + t +
                                  "' is not written yet (llama, mixtral, qwen2, qwen3, qwen2_moe, qwen3_moe, deepseek_v3 are)");
}

const nlohmann::ordered_json &text_config(const Model &model) { return model.config().text(); }

template <typename T>
T cfg(const Model &model, const char *key, T fallback) {
    const auto &c = text_config(model);
    if (!c.contains(key) || c[key].is_null()) return fallback;
    return c[key].get<T>();
}

const char *kProjName[3] = {"gate", "up", "down"};

struct TypeRule {
    std::regex re;
    ktq_ggml_type type;
};

std::vector<TypeRule> parse_type_rules(const std::vector<std::string> &rules) {
    std::vector<TypeRule> out;
    for (const auto &r : rules) {
        const auto eq = r.rfind('=');
        if (eq == std::string::npos || eq == 0)
            fail(KTQ_ERR_INVALID_ARGUMENT, "tensor type rule '" + r + "' is not REGEX=TYPE");
        const std::string name = r.substr(eq + 1);
        ktq_ggml_type type = KTQ_GGML_F32;
        bool found = false;
        for (int t = 0; t < 32 && !found; ++t) {  // ktq_ggml_type's range
            const GgmlTypeTraits *tr = ggml_traits(static_cast<ktq_ggml_type>(t));
            if (tr && name == tr->name) type = static_cast<ktq_ggml_type>(t), found = true;
        }
        if (!found) fail(KTQ_ERR_INVALID_ARGUMENT, "tensor type rule '" + r + "': unknown ggml type " + name);
        try {
            out.push_back({std::regex(r.substr(0, eq)), type});
        } catch (const std::regex_error &e) {
            fail(KTQ_ERR_INVALID_ARGUMENT, "tensor type rule '" + r + "': " + e.what());
        }
    }
    return out;
}

// The first rule whose regex is found in weight `name`, or null.
const TypeRule *matching_rule(const std::vector<TypeRule> &rules, const std::string &name) {
    for (const auto &r : rules)
        if (std::regex_search(name, r.re)) return &r;
    return nullptr;
}

// llama.cpp's file type number for a single-type file (general.file_type).
uint32_t file_type_of(ktq_ggml_type t) {
    switch (t) {
    case KTQ_GGML_F32: return 0;
    case KTQ_GGML_F16: return 1;
    case KTQ_GGML_Q4_0: return 2;
    case KTQ_GGML_Q4_1: return 3;
    case KTQ_GGML_Q8_0: return 7;
    case KTQ_GGML_Q5_0: return 8;
    case KTQ_GGML_Q5_1: return 9;
    case KTQ_GGML_Q2_K: return 10;
    case KTQ_GGML_Q3_K: return 12;  // Q3_K_M
    case KTQ_GGML_Q4_K: return 15;  // Q4_K_M
    case KTQ_GGML_Q5_K: return 17;  // Q5_K_M
    case KTQ_GGML_Q6_K: return 18;
    case KTQ_GGML_BF16: return 32;
    default: return 0;
    }
}

// "<file> <sha256>" for config.json, tokenizer.json and every weight file of
// the checkpoint, sorted by file name: the shards' digests are the Hugging
// Face hub's LFS object ids, so the exact source can be named and checked.
std::vector<std::string> source_hashes(const Model &model) {
    std::vector<std::string> names, paths;
    const std::string &dir = model.checkpoint().dir();
    for (const char *aux : {"config.json", "tokenizer.json"})
        if (file_exists(dir + "/" + aux)) names.emplace_back(aux), paths.push_back(dir + "/" + aux);
    for (const auto &f : model.checkpoint().files()) {
        const std::string &p = f->path();
        names.push_back(p.substr(p.find_last_of('/') + 1));
        paths.push_back(p);
    }
    const std::vector<std::string> digests = files_sha256_hex(paths, std::thread::hardware_concurrency());
    std::vector<std::string> out;
    for (size_t i = 0; i < names.size(); ++i) out.push_back(names[i] + " " + digests[i]);
    std::sort(out.begin(), out.end());
    return out;
}

// convert_hf_to_gguf's general.size_label: the parameter count rounded to two
// significant digits with K/M/B/T ("13M"), or for MoE models "<experts>x<one
// expert's share plus everything not an expert>" ("16x42M"). Split experts
// count as the stacked tensor they stand for.
std::string size_label(const OutputPlan &plan) {
    uint64_t total = 0, shared = 0, expert = 0, expert_sum = 0, expert_tensors = 0;
    std::map<std::string, std::pair<uint64_t, uint64_t>> split;  // stacked name -> (values, experts)
    static const std::regex split_expert(R"(^(blk\.\d+\.ffn_(gate|up|down))\.\d+\.weight$)");
    for (const auto &t : plan.tensors) {
        uint64_t size = 1;
        for (int64_t d : t.shape) size *= static_cast<uint64_t>(d);
        total += size;
        std::smatch m;
        if (t.gguf_stacked_experts && t.shape.size() == 3) {
            expert += size / static_cast<uint64_t>(t.shape[0]);
            expert_sum += static_cast<uint64_t>(t.shape[0]);
            ++expert_tensors;
        } else if (std::regex_match(t.name, m, split_expert)) {
            auto &s = split[m[1].str()];
            s.first += size;
            s.second += 1;
        } else {
            shared += size;
        }
    }
    for (const auto &[name, s] : split) {
        expert += s.first / s.second;
        expert_sum += s.second;
        ++expert_tensors;
    }
    const uint64_t experts = expert_tensors ? expert_sum / expert_tensors : 0;
    const double count = static_cast<double>(experts ? shared + expert : total);
    const char *suffix = count > 1e12 ? "T" : count > 1e9 ? "B" : count > 1e6 ? "M" : "K";
    const double scaled = count * (count > 1e12 ? 1e-12 : count > 1e9 ? 1e-9 : count > 1e6 ? 1e-6 : 1e-3);
    const std::string whole = std::to_string(static_cast<long long>(std::nearbyint(scaled)));  // Python's round()
    const int digits = whole == "0" ? 0 : static_cast<int>(whole.size());
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f%s", std::max(2 - digits, 0), scaled, suffix);
    return experts ? std::to_string(experts) + "x" + buf : std::string(buf);
}

// Tokens the router sent to each expert during calibration, per MoE layer.
using RoutingCounts = std::map<int, std::vector<int64_t>>;

// From a GGUF imatrix: the counts of each layer's stacked gate entry (the
// experts' three weights see the same tokens).
RoutingCounts routing_from_imatrix(const Imatrix &m) {
    RoutingCounts out;
    for (const auto &[name, tokens] : m.counts) {
        int layer = -1;
        char rest[32] = {};
        if (std::sscanf(name.c_str(), "blk.%d.%31s", &layer, rest) == 2 && std::string(rest) == "ffn_gate_exps.weight")
            out[layer] = tokens;
    }
    return out;
}

// From ktq's own calibration (routing_stats.json of `--engine gptq`): {"layers": {"L": [tokens per expert]}}.
RoutingCounts routing_from_stats(const Model &model, const std::string &path) {
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(read_text_file(path));
    } catch (const std::exception &e) {
        fail(KTQ_ERR_FORMAT, path + ": not a routing statistics file: " + e.what());
    }
    if (!doc.contains("layers") || !doc["layers"].is_object())
        fail(KTQ_ERR_FORMAT, path + ": no \"layers\" object (ktq's routing_stats.json has one)");
    const auto &arch = model.arch();
    RoutingCounts out;
    for (auto it = doc["layers"].begin(); it != doc["layers"].end(); ++it) {
        int layer = -1;
        try {
            layer = std::stoi(it.key());
        } catch (const std::exception &) {
        }
        const int n_layers = static_cast<int>(arch.layers.size());
        if (layer < 0 || layer >= n_layers || arch.layers[static_cast<size_t>(layer)].storage == KTQ_EXPERTS_NONE)
            fail(KTQ_ERR_FORMAT, path + ": layer '" + it.key() + "' is not a MoE layer of " + model.checkpoint().dir());
        const int experts = arch.layers[static_cast<size_t>(layer)].num_experts;
        if (!it.value().is_array() || static_cast<int>(it.value().size()) != experts)
            fail(KTQ_ERR_FORMAT, path + ": layer " + it.key() + " needs " + std::to_string(experts) +
                                     " token counts, one per routed expert");
        for (const auto &c : it.value()) {
            if (!c.is_number_integer() || c.get<int64_t>() < 0)
                fail(KTQ_ERR_FORMAT, path + ": layer " + it.key() + " has a count that is not a non-negative integer");
            out[layer].push_back(c.get<int64_t>());
        }
    }
    return out;
}

// Placement data for hybrid pipelines: ktq.routing.blk.N.expert_tokens.
void add_routing_keys(const RoutingCounts &counts, const std::string &source, gguf::Metadata &kv) {
    if (counts.empty()) return;
    for (const auto &[layer, tokens] : counts) {
        std::vector<int32_t> per_expert;
        for (int64_t c : tokens) per_expert.push_back(static_cast<int32_t>(std::min<int64_t>(c, INT32_MAX)));
        kv.add_i32_array("ktq.routing.blk." + std::to_string(layer) + ".expert_tokens", per_expert);
    }
    kv.add_string("ktq.routing.source", source);
}

// Gives every weight the importance llama-quantize would use for it: the
// imatrix entry of its GGUF name (a split expert "blk.N.ffn_gate.E.weight"
// takes expert E's row of "blk.N.ffn_gate_exps.weight", as llama-imatrix
// names it). Weights without an entry are quantized without, as
// llama-quantize does; an entry of the wrong size is an error (except for
// token_embd, which llama-quantize lets pass). Records llama-quantize's
// quantize.imatrix.* keys.
template <typename Quantizable>
void attach_importance(const Imatrix &m, OutputPlan &plan, Quantizable quantizable, gguf::Metadata &kv) {
    static const std::regex split_expert(R"(^(blk\.\d+\.ffn_(gate|up|down))\.(\d+)\.weight$)");
    for (auto &t : plan.tensors) {
        if (!quantizable(t)) continue;
        const uint64_t ne0 = static_cast<uint64_t>(t.shape.back());
        const uint64_t slices = t.shape.size() == 3 ? static_cast<uint64_t>(t.shape[0]) : 1;
        std::string name = t.name;
        uint64_t offset = 0, need = ne0 * slices;
        std::smatch sm;
        if (std::regex_match(t.name, sm, split_expert)) {
            name = sm[1].str() + "_exps.weight";
            offset = std::stoull(sm[3].str()) * ne0;
            need = 0;  // the entry covers every expert: checked below against the expert index
        }
        auto it = m.entries.find(name);
        if (it == m.entries.end()) continue;
        const auto &entry = *it->second;
        const bool fits = need ? entry.size() == need : entry.size() % ne0 == 0 && offset + ne0 <= entry.size();
        if (!fits) {
            if (t.name.rfind("token_embd", 0) == 0) continue;
            fail(KTQ_ERR_FORMAT, m.path + ": importance of '" + name + "' has " + std::to_string(entry.size()) +
                                     " values; weight '" + t.name + "' needs " +
                                     (need ? std::to_string(need) : "one row of " + std::to_string(ne0) + " per expert") +
                                     " (an imatrix of another model?)");
        }
        t.gguf_importance = it->second;
        t.gguf_importance_offset = offset;
    }
    kv.add_string("ktq.imatrix", m.path);
    kv.add_string("quantize.imatrix.file", m.path.substr(0, 127));
    if (!m.datasets.empty()) kv.add_string("quantize.imatrix.dataset", m.datasets[0].substr(0, 127));
    kv.add_i32("quantize.imatrix.entries_count", static_cast<int32_t>(m.entries.size()));
    if (m.chunk_count > 0) kv.add_i32("quantize.imatrix.chunks_count", static_cast<int32_t>(m.chunk_count));
}

// What llama.cpp's convert_hf_to_gguf writes for a scaled RoPE (all
// architectures but deepseek2, which has its own keys): linear and yarn as
// rope.scaling.* keys; llama3 (Llama 3.1+) as the rope_freqs tensor
// (rope_freqs_tensor). Types llama.cpp cannot take from these keys fail by
// name instead of writing a file that would compute another model.
void add_rope_scaling_keys(const Model &model, const std::string &arch, gguf::Metadata &kv) {
    const nlohmann::ordered_json *p = rope_parameters(text_config(model));
    const std::string type = rope_type(p), a = arch + ".rope.scaling.";
    const std::string where = model.checkpoint().dir() + "/config.json: ";
    auto number = [&](const char *key) { return p->contains(key) && (*p)[key].is_number(); };
    if (type == "default" || type == "llama3") return;
    if (type == "linear" && number("factor")) {
        kv.add_string(a + "type", "linear");
        kv.add_f32(a + "factor", (*p)["factor"].get<float>());
        return;
    }
    if (type == "yarn" && number("factor")) {
        kv.add_string(a + "type", "yarn");
        kv.add_f32(a + "factor", (*p)["factor"].get<float>());
        const int original = number("original_max_position_embeddings")
                                 ? (*p)["original_max_position_embeddings"].get<int>()
                                 : cfg<int>(model, "max_position_embeddings", 4096);
        kv.add_u32(a + "original_context_length", static_cast<uint32_t>(original));
        if (number("extrapolation_factor")) kv.add_f32(a + "yarn_ext_factor", (*p)["extrapolation_factor"].get<float>());
        for (const char *key : {"attention_factor", "attn_factor"})
            if (number(key)) {
                kv.add_f32(a + "yarn_attn_factor", (*p)[key].get<float>());
                break;
            }
        if (number("beta_fast")) kv.add_f32(a + "yarn_beta_fast", (*p)["beta_fast"].get<float>());
        if (number("beta_slow")) kv.add_f32(a + "yarn_beta_slow", (*p)["beta_slow"].get<float>());
        return;
    }
    fail(KTQ_ERR_UNSUPPORTED, where + "rope_type \"" + type + "\"" + (number("factor") ? "" : " without a factor") +
                                  " is not written to GGUF (default, linear, yarn and llama3 are)");
}

// llama.cpp's rope_freqs.weight for Llama 3.1's rope: per frequency the
// divisor of theta's frequency (1 above the high-frequency wavelength,
// factor below the low one, blended in between), as convert_hf_to_gguf
// computes it from float32 frequencies.
std::vector<float> llama3_rope_freqs(const Model &model, int head_dim) {
    const nlohmann::ordered_json &p = *rope_parameters(text_config(model));
    auto get = [&](const char *key, double fallback) {
        return p.contains(key) && p[key].is_number() ? p[key].get<double>() : fallback;
    };
    const double theta = get("rope_theta", model.config().rope_theta > 0 ? model.config().rope_theta : 10000.0);
    const double factor = get("factor", 8.0), low = get("low_freq_factor", 1.0), high = get("high_freq_factor", 4.0);
    const double original = get("original_max_position_embeddings", 8192);
    std::vector<float> out;
    for (int i = 0; i < head_dim / 2; ++i) {
        const float freq = 1.0f / static_cast<float>(std::pow(theta, static_cast<double>(static_cast<float>(2 * i) /
                                                                                           static_cast<float>(head_dim))));
        const double wavelen = 2 * M_PI / static_cast<double>(freq);
        if (wavelen < original / high) {
            out.push_back(1.0f);
        } else if (wavelen > original / low) {
            out.push_back(static_cast<float>(factor));
        } else {
            const double smooth = (original / wavelen - low) / (high - low);
            out.push_back(static_cast<float>(1 / ((1 - smooth) / factor + smooth)));
        }
    }
    return out;
}

// llama.cpp's deepseek2 hyperparameters (what its convert_hf_to_gguf writes for DeepseekV3).
void add_deepseek2_keys(const Model &model, gguf::Metadata &kv) {
    const std::string a = "deepseek2.";
    const std::string where = model.checkpoint().dir() + "/config.json: ";
    if (!cfg<bool>(model, "rope_interleave", true))
        fail(KTQ_ERR_UNSUPPORTED, where + "rope_interleave false: llama.cpp's deepseek2 rotates interleaved pairs");
    const std::string scoring = cfg<std::string>(model, "scoring_func", "sigmoid");
    if (scoring != "sigmoid" && scoring != "softmax")
        fail(KTQ_ERR_UNSUPPORTED, where + "scoring_func '" + scoring + "' (sigmoid or softmax are written)");
    const int kv_lora = cfg<int>(model, "kv_lora_rank", 512), rope = cfg<int>(model, "qk_rope_head_dim", 64);
    const int nope = cfg<int>(model, "qk_nope_head_dim", 128), v = cfg<int>(model, "v_head_dim", 128);
    const ModelConfig &c = model.config();
    kv.add_u32(a + "leading_dense_block_count", static_cast<uint32_t>(cfg<int>(model, "first_k_dense_replace", 0)));
    const int q_lora = cfg<int>(model, "q_lora_rank", 0);
    if (q_lora > 0) kv.add_u32(a + "attention.q_lora_rank", static_cast<uint32_t>(q_lora));
    kv.add_u32(a + "attention.kv_lora_rank", static_cast<uint32_t>(kv_lora));
    kv.add_u32(a + "attention.key_length", static_cast<uint32_t>(kv_lora + rope));
    kv.add_u32(a + "attention.value_length", static_cast<uint32_t>(kv_lora));
    kv.add_u32(a + "attention.key_length_mla", static_cast<uint32_t>(nope + rope));
    kv.add_u32(a + "attention.value_length_mla", static_cast<uint32_t>(v));
    kv.add_u32(a + "expert_feed_forward_length",
               static_cast<uint32_t>(cfg<int>(model, "moe_intermediate_size", c.intermediate_size)));
    kv.add_u32(a + "expert_shared_count", static_cast<uint32_t>(cfg<int>(model, "n_shared_experts", 0)));
    if (text_config(model).contains("routed_scaling_factor"))
        kv.add_f32(a + "expert_weights_scale", cfg<float>(model, "routed_scaling_factor", 1.0f));
    if (cfg<bool>(model, "norm_topk_prob", false)) kv.add_bool(a + "expert_weights_norm", true);
    if (text_config(model).contains("n_group"))
        kv.add_u32(a + "expert_group_count", static_cast<uint32_t>(cfg<int>(model, "n_group", 1)));
    if (text_config(model).contains("topk_group"))
        kv.add_u32(a + "expert_group_used_count", static_cast<uint32_t>(cfg<int>(model, "topk_group", 1)));
    kv.add_u32(a + "expert_gating_func", scoring == "sigmoid" ? 2 : 1);  // gguf's ExpertGatingFuncType
    kv.add_u32(a + "rope.dimension_count", static_cast<uint32_t>(rope));
    const auto *scaling = rope_parameters(text_config(model));
    if (rope_type(scaling) == "yarn") {
        kv.add_string(a + "rope.scaling.type", "yarn");
        kv.add_f32(a + "rope.scaling.factor", scaling->value("factor", 1.0f));
        kv.add_u32(a + "rope.scaling.original_context_length",
                   static_cast<uint32_t>(scaling->value("original_max_position_embeddings", 4096)));
        // llama.cpp stores 0.1 x mscale_all_dim here and divides it out again when loading.
        if (scaling->contains("mscale_all_dim"))
            kv.add_f32(a + "rope.scaling.yarn_log_multiplier", 0.1f * (*scaling)["mscale_all_dim"].get<float>());
    }
}

}  // namespace

OutputPlan plan_gguf(const Model &model, const GgufLayout &layout, const ktq_writer_options &opts) {
    const std::string arch = gguf_arch(model);
    const Architecture &a = model.arch();
    const ModelConfig &c = model.config();
    const int layers = static_cast<int>(a.layers.size());
    const int heads = cfg<int>(model, "num_attention_heads", 0);
    // DeepSeek's MLA is written as MQA with one latent KV head (llama.cpp's deepseek2).
    const int kv_heads = arch == "deepseek2" ? 1 : cfg<int>(model, "num_key_value_heads", heads);
    const int head_dim = cfg<int>(model, "head_dim", heads ? c.hidden_size / heads : 0);
    if (!ggml_traits(layout.type)) fail(KTQ_ERR_UNSUPPORTED, "ggml type " + std::to_string(layout.type) + " is not implemented");

    auto kv = std::make_shared<gguf::Metadata>();
    kv->add_string("general.architecture", arch);
    kv->add_string("general.type", "model");
    kv->add_string("general.name", c.architecture);
    kv->add_u32("general.alignment", gguf::kAlignment);
    std::optional<gguf_mix::Mix> mix;
    if (!layout.mix.empty()) {
        mix = gguf_mix::find(layout.mix);
        if (!mix && (layout.mix == "Q2_K_S" || layout.mix.rfind("IQ", 0) == 0))
            fail(KTQ_ERR_UNSUPPORTED, "GGUF mixture " + layout.mix +
                                          " is not written yet: it needs an importance matrix and ggml types or "
                                          "rules ktq does not have (the K-quant and legacy mixtures take --imatrix)");
        if (!mix) {
            std::string known;
            for (const auto &n : gguf_mix::names()) known += (known.empty() ? "" : ", ") + n;
            fail(KTQ_ERR_INVALID_ARGUMENT, "unknown GGUF mixture '" + layout.mix + "' (known: " + known + ")");
        }
    }
    kv->add_u32("general.file_type", mix ? mix->file_type : file_type_of(layout.type));
    kv->add_u32("general.quantization_version", 2);
    kv->add_u32(arch + ".block_count", static_cast<uint32_t>(layers));
    kv->add_u32(arch + ".context_length", static_cast<uint32_t>(cfg<int>(model, "max_position_embeddings", 4096)));
    kv->add_u32(arch + ".embedding_length", static_cast<uint32_t>(c.hidden_size));
    kv->add_u32(arch + ".feed_forward_length",
                static_cast<uint32_t>(c.intermediate_size ? c.intermediate_size : a.moe_intermediate));
    kv->add_u32(arch + ".attention.head_count", static_cast<uint32_t>(heads));
    kv->add_u32(arch + ".attention.head_count_kv", static_cast<uint32_t>(kv_heads));
    kv->add_f32(arch + ".rope.freq_base", static_cast<float>(c.rope_theta > 0 ? c.rope_theta : 10000.0));
    kv->add_f32(arch + ".attention.layer_norm_rms_epsilon", cfg<float>(model, "rms_norm_eps", 1e-6f));
    if (arch == "llama") kv->add_u32(arch + ".rope.dimension_count", static_cast<uint32_t>(head_dim));
    // convert_hf_to_gguf writes these whenever config.json gives head_dim (Qwen3 has one that is not hidden / heads).
    if (arch != "deepseek2" && (text_config(model).contains("head_dim") || arch == "qwen3" || arch == "qwen3moe")) {
        kv->add_u32(arch + ".attention.key_length", static_cast<uint32_t>(head_dim));
        kv->add_u32(arch + ".attention.value_length", static_cast<uint32_t>(head_dim));
    }
    if (a.num_experts > 0) {
        kv->add_u32(arch + ".expert_count", static_cast<uint32_t>(a.num_experts));
        kv->add_u32(arch + ".expert_used_count", static_cast<uint32_t>(c.experts_per_token));
        if (arch == "qwen3moe" || arch == "qwen2moe")
            kv->add_u32(arch + ".expert_feed_forward_length", static_cast<uint32_t>(a.moe_intermediate));
        if (arch == "qwen2moe" && c.shared_expert_intermediate_size > 0)
            kv->add_u32(arch + ".expert_shared_feed_forward_length", static_cast<uint32_t>(c.shared_expert_intermediate_size));
    }
    if (arch == "deepseek2")
        add_deepseek2_keys(model, *kv);
    else
        add_rope_scaling_keys(model, arch, *kv);
    kv->add_u32(arch + ".vocab_size", static_cast<uint32_t>(c.vocab_size));
    gguf_tokenizer::add_keys(model, *kv, layout.tokenizer_pre);
    kv->add_string("ktq.version", ktq_version());
    kv->add_string("ktq.source", model.checkpoint().dir());
    kv->add_string("ktq.expert_layout", layout.split_experts ? "split" : "stacked");
    if (mix) kv->add_string("ktq.mix", mix->name);
    if (!layout.tensor_types.empty()) kv->add_string_array("ktq.tensor_type_rules", layout.tensor_types);
    if (layout.source_sha256) kv->add_string_array("ktq.source.sha256", source_hashes(model));

    const auto rules = parse_type_rules(layout.tensor_types);
    OutputPlan plan;
    plan.description = "gguf type=" + (mix ? mix->name : std::to_string(layout.type)) +
                       (layout.split_experts ? " split" : " stacked");
    for (const auto &r : layout.tensor_types) plan.description += " " + r;
    const bool permute = arch == "llama";  // llama's rotary pairs are interleaved in GGUF
    for (const auto &name : model.checkpoint().names()) {
        if (model.is_fp8_scale(name)) continue;
        if (arch == "deepseek2" && ends_with(name, ".self_attn.kv_b_proj.weight")) {
            const int l = layer_of_tensor(name);
            if (l < 0 || l >= layers) continue;
            const int nope = cfg<int>(model, "qk_nope_head_dim", 128), v = cfg<int>(model, "v_head_dim", 128);
            const TensorEntry &e = *model.checkpoint().at(name).entry;
            if (e.shape.size() != 2 || e.shape[0] != static_cast<int64_t>(heads) * (nope + v))
                fail(KTQ_ERR_FORMAT, name + ": expected " + std::to_string(heads) + " x (" + std::to_string(nope) + " + " +
                                         std::to_string(v) + ") rows");
            for (int part = 1; part <= 2; ++part) {
                OutputTensor t;
                t.name = "blk." + std::to_string(l) + (part == 1 ? ".attn_k_b.weight" : ".attn_v_b.weight");
                t.source = name;
                t.layer = l;
                t.gguf_type = KTQ_GGML_F32;
                t.gguf_mla_part = part;
                t.gguf_mla_heads = heads;
                t.gguf_mla_nope = nope;
                t.gguf_mla_v = v;
                t.shape = part == 1 ? std::vector<int64_t>{heads, e.shape[1], nope}
                                    : std::vector<int64_t>{heads, v, e.shape[1]};
                plan.tensors.push_back(std::move(t));
            }
            continue;
        }
        const std::string out = gguf_tensor_name(name);
        if (out.empty()) continue;  // experts (below), MTP layers, rotary caches
        const TensorEntry &e = *model.checkpoint().at(name).entry;
        OutputTensor t;
        t.name = out;
        t.source = name;
        t.shape = e.shape;
        // Qwen2-MoE's shared-expert gate ([1, hidden]) is a vector to llama.cpp ({n_embd}), kept F32.
        if (ends_with(out, "ffn_gate_inp_shexp.weight")) t.shape = {e.shape.back()};
        t.layer = layer_of_tensor(name);
        if (t.layer >= layers) continue;
        t.gguf_type = KTQ_GGML_F32;  // weights get theirs below, once the file order is known
        if (permute && (ends_with(out, "attn_q.weight") || ends_with(out, "attn_k.weight")))
            t.gguf_permute_heads = ends_with(out, "attn_q.weight") ? heads : kv_heads;
        plan.tensors.push_back(std::move(t));
    }
    for (int l = 0; l < layers; ++l) {
        const LayerExperts &le = a.layers[static_cast<size_t>(l)];
        if (le.storage == KTQ_EXPERTS_NONE) continue;
        for (int p = 0; p < 3; ++p) {
            const MatrixView v = model.expert(l, 0, static_cast<ktq_expert_proj>(p));
            auto base = [&](OutputTensor &t) {
                t.layer = l;
                t.proj = p;
                t.source = v.tensor;
            };
            if (layout.split_experts) {
                for (int e = 0; e < le.num_experts; ++e) {
                    OutputTensor t;
                    base(t);
                    t.expert = e;
                    t.source = model.expert(l, e, static_cast<ktq_expert_proj>(p)).tensor;
                    t.name = "blk." + std::to_string(l) + ".ffn_" + kProjName[p] + "." + std::to_string(e) + ".weight";
                    t.shape = {static_cast<int64_t>(v.rows), static_cast<int64_t>(v.cols)};
                    plan.tensors.push_back(std::move(t));
                }
            } else {
                OutputTensor t;
                base(t);
                t.gguf_stacked_experts = true;
                t.name = "blk." + std::to_string(l) + ".ffn_" + kProjName[p] + "_exps.weight";
                t.shape = {le.num_experts, static_cast<int64_t>(v.rows), static_cast<int64_t>(v.cols)};
                plan.tensors.push_back(std::move(t));
            }
        }
    }
    if (rope_type(rope_parameters(text_config(model))) == "llama3") {
        if (arch != "llama")
            fail(KTQ_ERR_UNSUPPORTED, model.checkpoint().dir() + "/config.json: rope_type \"llama3\" is written to "
                                                                 "GGUF for llama models only (as llama.cpp's rope_freqs)");
        OutputTensor t;
        t.name = "rope_freqs.weight";
        t.layer = -1;
        t.gguf_type = KTQ_GGML_F32;
        t.gguf_values = std::make_shared<const std::vector<float>>(llama3_rope_freqs(model, head_dim));
        t.shape = {static_cast<int64_t>(t.gguf_values->size())};
        plan.tensors.push_back(std::move(t));
    }
    // llama.cpp's order: token_embd, the blocks in order, then the output tensors.
    auto rank = [](const OutputTensor &t) { return t.name.rfind("token_embd", 0) == 0 ? -2 : t.layer < 0 ? 1 << 30 : t.layer; };
    std::stable_sort(plan.tensors.begin(), plan.tensors.end(), [&](const OutputTensor &x, const OutputTensor &y) {
        return rank(x) != rank(y) ? rank(x) < rank(y) : x.name < y.name;
    });
    // Weight types: a --tensor-type rule's, else the mixture's choice, else the one type; then
    // llama-quantize's replacement where the type's block does not divide the row.
    auto quantizable = [](const OutputTensor &t) {
        return t.shape.size() >= 2 && ends_with(t.name, ".weight") && !ends_with(t.name, "ffn_gate_inp.weight");
    };
    std::optional<Imatrix> imatrix;
    if (!layout.imatrix.empty()) imatrix = Imatrix::load(layout.imatrix);
    gguf_mix::ModelFacts facts;
    facts.has_imatrix = imatrix.has_value();
    facts.layers = layers;
    facts.heads = heads;
    facts.kv_heads = kv_heads;
    facts.experts = a.num_experts;
    facts.is_llama_70b = arch == "llama" && layers == 80 && heads != kv_heads;
    facts.has_output = false;
    for (const auto &t : plan.tensors) {
        facts.has_output |= t.name == "output.weight";
        facts.attn_v_count += quantizable(t) && gguf_mix::is_attn_v_like(t.name);
    }
    int attn_v_index = 0;
    for (auto &t : plan.tensors) {
        if (!quantizable(t)) continue;
        const uint64_t row = static_cast<uint64_t>(t.shape.back());
        const TypeRule *rule = matching_rule(rules, t.name);
        if (rule) t.gguf_type = gguf_mix::fit_row(rule->type, row);
        else if (mix) t.gguf_type = gguf_mix::choose(*mix, facts, t.name, attn_v_index, row);
        else t.gguf_type = gguf_mix::fit_row(layout.type, row);
        attn_v_index += gguf_mix::is_attn_v_like(t.name);
    }
    if (imatrix) attach_importance(*imatrix, plan, quantizable, *kv);
    if (!layout.routing_stats.empty())
        add_routing_keys(routing_from_stats(model, layout.routing_stats), layout.routing_stats, *kv);
    else if (imatrix)
        add_routing_keys(routing_from_imatrix(*imatrix), imatrix->path, *kv);
    kv->add_string("general.size_label", size_label(plan));
    plan.gguf_metadata = kv;
    (void)opts;
    return plan;
}

}  // namespace ktq
