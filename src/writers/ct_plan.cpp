#include "writers/ct_plan.h"

#include <algorithm>
#include <map>
#include <regex>
#include <sstream>

#include "reading/dtype.h"
#include "runtime/error.h"
#include "runtime/strings.h"

namespace ktq {

namespace {

// compressed-tensors' target syntax: "re:REGEX" matches when the regex
// matches at the start of the module name (Python's re.match), "Linear"
// matches every Linear module, anything else is an exact module name.
class Pattern {
public:
    explicit Pattern(const std::string &text) : text_(text) {
        if (text.rfind("re:", 0) != 0) return;
        try {
            re_ = std::regex(text.substr(3), std::regex::ECMAScript);
            is_regex_ = true;
        } catch (const std::regex_error &e) {
            fail(KTQ_ERR_INVALID_ARGUMENT, "bad pattern '" + text + "': " + e.what());
        }
    }
    bool matches(const std::string &module) const {
        if (is_regex_) return std::regex_search(module, re_, std::regex_constants::match_continuous);
        return text_ == "Linear" || text_ == module;
    }

private:
    std::string text_;
    std::regex re_;
    bool is_regex_ = false;
};

bool matches_any(const std::vector<Pattern> &patterns, const std::string &module) {
    return std::any_of(patterns.begin(), patterns.end(), [&](const Pattern &p) { return p.matches(module); });
}

std::vector<Pattern> compile(const std::vector<std::string> &texts) {
    std::vector<Pattern> out;
    for (const auto &t : texts) out.emplace_back(t);
    return out;
}

// Modules that are torch.nn.Linear in transformers' models: every 2-D
// "X.weight" but the embeddings.
bool is_linear_weight(const Model &model, const std::string &name) {
    if (!ends_with(name, ".weight") || model.is_fp8_scale(name)) return false;
    if (model.checkpoint().at(name).entry->shape.size() != 2) return false;
    for (const char *embedding : {"embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight"})
        if (ends_with(name, embedding)) return false;
    return true;
}

// The order transformers' named_modules() gives inside a decoder layer (the
// order of the config's ignore list): attention, the dense MLP, routed
// experts, the router, shared experts, their gate; projections in the order
// the model classes declare them.
int proj_rank(const std::string &module) {
    static const char *const order[] = {"q_proj",   "q_a_proj", "q_b_proj",           "k_proj", "kv_a_proj_with_mqa",
                                        "kv_b_proj", "v_proj",  "o_proj",             "gate_proj", "up_proj",
                                        "down_proj", "w1",      "w3",                 "w2"};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); ++i)
        if (ends_with(module, std::string(".") + order[i])) return static_cast<int>(i);
    return 99;
}

int module_rank(const std::string &module) {
    if (module.find(".self_attn.") != std::string::npos) return proj_rank(module);
    if (ends_with(module, "shared_expert_gate")) return 5000;
    if (module.find(".shared_expert") != std::string::npos) return 4000 + proj_rank(module);
    if (ends_with(module, ".gate")) return 3000;
    if (module.find(".experts.") != std::string::npos) return 2000 + proj_rank(module);
    return 1000 + proj_rank(module);
}

std::string dtype_config_name(ktq_dtype d) {
    return d == KTQ_DTYPE_F16 ? "float16" : d == KTQ_DTYPE_F32 ? "float32" : "bfloat16";
}

std::string ct_config(const Model &model, const CtLayout &layout, const std::vector<std::string> &ignored) {
    // transformers writes config.json with sorted keys: so do we.
    nlohmann::json cfg = nlohmann::json::parse(model.config().raw.dump());
    const ct::Scheme &s = layout.scheme;
    nlohmann::json weights = {
        {"actorder", nullptr},
        {"block_structure", nullptr},
        {"dynamic", false},
        {"group_size", s.group_size > 0 ? nlohmann::json(s.group_size) : nlohmann::json(nullptr)},
        {"num_bits", s.bits},
        // llm-compressor's names of the memoryless weight observers.
        {"observer", s.observer == ct::Observer::kMse ? "memoryless_mse" : "memoryless_minmax"},
        {"observer_kwargs", nlohmann::json::object()},
        {"scale_dtype", nullptr},
        {"strategy", s.group_size > 0 ? "group" : "channel"},
        {"symmetric", s.symmetric},
        {"type", "int"},
        {"zp_dtype", s.symmetric ? nlohmann::json(nullptr) : nlohmann::json("torch.int8")},
    };
    nlohmann::json group = {{"format", "pack-quantized"}, {"input_activations", nullptr},
                            {"output_activations", nullptr}, {"targets", layout.targets}, {"weights", weights}};
    nlohmann::json q = {
        {"config_groups", {{"group_0", group}}},
        {"format", "pack-quantized"},
        {"global_compression_ratio", nullptr},
        {"ignore", ignored},
        {"kv_cache_scheme", nullptr},
        {"quant_method", "compressed-tensors"},
        {"quantization_status", "compressed"},
        {"sparsity_config", nlohmann::json::object()},
        {"transform_config", nlohmann::json::object()},
        {"version", "0.19.0"},
    };
    nlohmann::json *scope = cfg.contains("text_config") && cfg["text_config"].is_object() ? &cfg["text_config"] : &cfg;
    scope->erase("quantization_config");  // an FP8 checkpoint's: its blocks are dequantized now
    if (scope != &cfg) cfg.erase("quantization_config");
    const std::string dtype = dtype_config_name(s.dtype);
    for (nlohmann::json *sc : {&cfg, scope}) {
        if (sc->contains("dtype")) (*sc)["dtype"] = dtype;
        if (sc->contains("torch_dtype")) (*sc)["torch_dtype"] = dtype;
    }
    cfg["quantization_config"] = q;
    return cfg.dump(2) + "\n";
}

}  // namespace

std::vector<std::string> default_ct_ignore(const Model &model) {
    std::vector<std::string> ignore = {"lm_head",
                                       "re:.*\\.mlp\\.gate$",
                                       // Mixtral's router: transformers 5 calls the module mlp.gate,
                                       // which kt-kernel's pattern above matches there.
                                       "re:.*\\.block_sparse_moe\\.gate$",
                                       "re:.*\\.self_attn\\..*$",
                                       "re:.*\\.shared_expert\\..*$",
                                       "re:.*\\.shared_experts\\..*$",
                                       "re:.*\\.mlp\\.shared_expert_gate$",
                                       "re:.*\\.linear_attn\\..*$"};
    const auto &cfg = model.config().raw;
    const nlohmann::ordered_json &scope = cfg.contains("text_config") && cfg["text_config"].is_object() ? cfg["text_config"] : cfg;
    if (scope.contains("first_k_dense_replace") && scope["first_k_dense_replace"].is_number_integer()) {
        const int k = scope["first_k_dense_replace"].get<int>();
        for (int l = 0; l < k; ++l) ignore.push_back("re:model\\.layers\\." + std::to_string(l) + "\\.mlp\\..*$");
    }
    return ignore;
}

ktq_dtype ct_model_dtype(const Model &model) {
    const std::string &d = model.config().dtype;
    if (d == "float16" || d == "half") return KTQ_DTYPE_F16;
    if (d == "float32" || d == "float") return KTQ_DTYPE_F32;
    return KTQ_DTYPE_BF16;
}

std::vector<std::string> parse_ct_patterns(const char *text) {
    std::vector<std::string> out;
    if (!text) return out;
    std::stringstream ss(text);
    std::string line;
    while (std::getline(ss, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (line.empty()) continue;
        const bool plain = line == "Linear" ||
                           std::all_of(line.begin(), line.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; });
        out.push_back(line.rfind("re:", 0) == 0 || plain ? line : "re:" + line);
        Pattern check(out.back());  // a bad regex fails here, at open time
    }
    return out;
}

OutputPlan plan_compressed_tensors(const Model &model, const CtLayout &layout, const ktq_writer_options &opts) {
    const ct::Scheme &s = layout.scheme;
    if (auto problem = ct::scheme_problem(s); !problem.empty()) fail(KTQ_ERR_INVALID_ARGUMENT, "compressed-tensors: " + problem);
    const auto targets = compile(layout.targets), ignore = compile(layout.ignore);
    const int layers = static_cast<int>(model.arch().layers.size());
    OutputPlan plan;
    std::ostringstream desc;
    desc << "compressed-tensors bits=" << s.bits << " group=" << s.group_size << " sym=" << s.symmetric
         << " dtype=" << dtype_name(s.dtype) << " rounding=" << (s.dtype_rounding ? "dtype" : "fp32");
    // The resume fingerprint: named only when not the default, so that runs begun before the option existed
    // still resume.
    if (s.observer == ct::Observer::kMse) desc << " observer=mse";
    desc << " targets=";
    for (const auto &t : layout.targets) desc << t << ";";
    desc << " ignore=";
    for (const auto &t : layout.ignore) desc << t << ";";
    plan.description = desc.str();

    std::vector<std::pair<int, std::string>> ignored;  // (layer, module) of Linear modules kept
    for (const auto &name : model.checkpoint().names()) {
        if (model.is_fp8_scale(name)) continue;
        const TensorEntry &e = *model.checkpoint().at(name).entry;
        int layer = layer_of_tensor(name);
        layer = (layer >= 0 && layer < layers) ? layer : -1;  // MTP layers go with the globals
        const std::string module = name.substr(0, name.size() - 7);  // without ".weight"
        const bool linear = is_linear_weight(model, name);
        // MTP layers are not modules of transformers' model: kept as they are.
        const bool in_model = layer >= 0 || layer_of_tensor(name) < 0;
        if (linear && in_model && matches_any(targets, module) && !matches_any(ignore, module)) {
            const uint64_t rows = static_cast<uint64_t>(e.shape[0]), cols = static_cast<uint64_t>(e.shape[1]);
            if (auto problem = ct::shape_problem(s, rows, cols); !problem.empty())
                fail(KTQ_ERR_FORMAT, model.checkpoint().at(name).file->display_name() + ": tensor '" + name + "' [" +
                                         std::to_string(rows) + ", " + std::to_string(cols) +
                                         "] cannot be quantized: " + problem +
                                         " (choose another group size, or ignore this module)");
            auto add = [&](const char *suffix, ktq_dtype dtype, std::vector<int64_t> shape, OutputTensor::CtPart part) {
                OutputTensor t;
                t.name = module + suffix;
                t.source = name;
                t.dtype = dtype;
                t.shape = std::move(shape);
                t.layer = layer;
                t.ct_part = part;
                t.ct_scheme = s;
                plan.tensors.push_back(std::move(t));
            };
            const auto groups = static_cast<int64_t>(ct::groups_per_row(s, cols));
            add(".weight_packed", KTQ_DTYPE_I32, {e.shape[0], static_cast<int64_t>(ct::packed_words_per_row(s, cols))},
                OutputTensor::CtPart::Packed);
            add(".weight_scale", s.dtype, {e.shape[0], groups}, OutputTensor::CtPart::Scale);
            if (!s.symmetric)
                add(".weight_zero_point", KTQ_DTYPE_I32, {static_cast<int64_t>(ct::zero_point_words(s, rows)), groups},
                    OutputTensor::CtPart::ZeroPoint);
            add(".weight_shape", KTQ_DTYPE_I64, {2}, OutputTensor::CtPart::Shape);
            continue;
        }
        if (linear && in_model) ignored.emplace_back(layer, module);
        OutputTensor t;
        t.name = name;
        t.source = name;
        t.dtype = dtype_is_float(e.dtype) ? s.dtype : e.dtype;
        // DeepSeek-V3's router bias is a float32 buffer in transformers
        // whatever the model's dtype, and is saved so.
        if (ends_with(name, ".e_score_correction_bias") && dtype_is_float(e.dtype)) t.dtype = KTQ_DTYPE_F32;
        t.shape = e.shape;
        t.layer = layer;
        plan.tensors.push_back(std::move(t));
    }
    // State-dict order: layers ascending, then globals; names sorted within.
    std::stable_sort(plan.tensors.begin(), plan.tensors.end(), [](const OutputTensor &a, const OutputTensor &b) {
        unsigned la = static_cast<unsigned>(a.layer), lb = static_cast<unsigned>(b.layer);  // -1 sorts last
        return la != lb ? la < lb : a.name < b.name;
    });
    std::stable_sort(ignored.begin(), ignored.end(), [](const auto &a, const auto &b) {
        unsigned la = static_cast<unsigned>(a.first), lb = static_cast<unsigned>(b.first);
        if (la != lb) return la < lb;
        const int ra = module_rank(a.second), rb = module_rank(b.second);
        return ra != rb ? ra < rb : a.second < b.second;
    });
    std::vector<std::string> ignored_names;
    for (auto &m : ignored) ignored_names.push_back(m.second);
    plan.config_json = ct_config(model, layout, ignored_names);
    if (opts.copy_aux_files) plan.aux_files = model_aux_files(model);
    return plan;
}

}  // namespace ktq
