#include "reading/architecture.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

#include "runtime/error.h"

namespace ktq {

namespace {

struct FamilyRow {
    const char *model_type;
    ktq_arch_family family;
};

constexpr FamilyRow kFamilies[] = {
    {"llama", KTQ_ARCH_LLAMA},          {"mistral", KTQ_ARCH_LLAMA},
    {"qwen2", KTQ_ARCH_QWEN2},          {"qwen3", KTQ_ARCH_QWEN3},
    {"qwen2_moe", KTQ_ARCH_QWEN2_MOE},  {"qwen3_moe", KTQ_ARCH_QWEN3_MOE},
    {"qwen3_5_moe", KTQ_ARCH_QWEN3_5_MOE}, {"qwen3_5_moe_text", KTQ_ARCH_QWEN3_5_MOE},
    {"mixtral", KTQ_ARCH_MIXTRAL},      {"deepseek_v2", KTQ_ARCH_DEEPSEEK_V2},
    {"deepseek_v3", KTQ_ARCH_DEEPSEEK_V3}, {"kimi_k2", KTQ_ARCH_DEEPSEEK_V3},
    {"glm4_moe", KTQ_ARCH_GLM4_MOE},
};

bool is_number(const std::string &s) {
    return !s.empty() && s.size() < 10 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::vector<std::string> split_dots(const std::string &name) {
    std::vector<std::string> parts;
    std::stringstream ss(name);
    std::string p;
    while (std::getline(ss, p, '.')) parts.push_back(p);
    return parts;
}

// Projection index of a per-expert matrix name, or -1.
int proj_of(const std::string &seg) {
    if (seg == "gate_proj" || seg == "w1") return KTQ_PROJ_GATE;
    if (seg == "up_proj" || seg == "w3") return KTQ_PROJ_UP;
    if (seg == "down_proj" || seg == "w2") return KTQ_PROJ_DOWN;
    return -1;
}

const char *kProjNames[3] = {"gate", "up", "down"};

}  // namespace

ktq_arch_family family_from_model_type(const std::string &model_type) {
    for (const auto &row : kFamilies)
        if (model_type == row.model_type) return row.family;
    return KTQ_ARCH_UNKNOWN;
}

const char *family_name(ktq_arch_family family) {
    switch (family) {
    case KTQ_ARCH_LLAMA: return "llama";
    case KTQ_ARCH_QWEN2: return "qwen2";
    case KTQ_ARCH_QWEN3: return "qwen3";
    case KTQ_ARCH_QWEN2_MOE: return "qwen2_moe";
    case KTQ_ARCH_QWEN3_MOE: return "qwen3_moe";
    case KTQ_ARCH_QWEN3_5_MOE: return "qwen3_5_moe";
    case KTQ_ARCH_MIXTRAL: return "mixtral";
    case KTQ_ARCH_DEEPSEEK_V2: return "deepseek_v2";
    case KTQ_ARCH_DEEPSEEK_V3: return "deepseek_v3";
    case KTQ_ARCH_GLM4_MOE: return "glm4_moe";
    case KTQ_ARCH_GENERIC_MOE: return "generic_moe";
    default: return "unknown";
    }
}

int layer_of_tensor(const std::string &name) {
    auto parts = split_dots(name);
    for (size_t i = 0; i + 1 < parts.size(); ++i)
        if ((parts[i] == "layers" || parts[i] == "h" || parts[i] == "blocks") && is_number(parts[i + 1]))
            return std::stoi(parts[i + 1]);
    return -1;
}

Architecture Architecture::detect(const ModelConfig &config, const Checkpoint &ckpt) {
    Architecture a;
    a.family = family_from_model_type(config.model_type);

    std::set<int> layer_ids;
    for (const auto &n : ckpt.names())
        if (int l = layer_of_tensor(n); l >= 0) layer_ids.insert(l);
    const int layers_seen = layer_ids.empty() ? 0 : *layer_ids.rbegin() + 1;
    // Layers are numbered densely from 0; a gap means a broken or hostile
    // checkpoint, refused before anything is sized by the largest index.
    if (static_cast<size_t>(layers_seen) != layer_ids.size())
        fail(KTQ_ERR_FORMAT, "tensor names skip decoder layers: the largest layer index is " +
                                 std::to_string(layers_seen - 1) + " but only " + std::to_string(layer_ids.size()) +
                                 " layers have tensors");
    int num_layers = config.num_layers > 0 ? config.num_layers : layers_seen;
    // A config may name fewer layers than the tensors hold (MTP layers), never
    // more: that is a truncated checkpoint (or a hostile config).
    if (num_layers > layers_seen && layers_seen > 0)
        fail(KTQ_ERR_FORMAT, "config.json says " + std::to_string(num_layers) + " layers but the tensors hold only " +
                                 std::to_string(layers_seen));
    a.layers.resize(static_cast<size_t>(std::max(0, num_layers)));

    // Collect expert tensors per layer from their names.
    std::vector<std::map<int, std::array<std::string, 3>>> found(a.layers.size());
    for (const auto &name : ckpt.names()) {
        auto parts = split_dots(name);
        int layer = -1;
        size_t after = 0;
        for (size_t i = 0; i + 1 < parts.size(); ++i)
            if (parts[i] == "layers" && is_number(parts[i + 1])) {
                layer = std::stoi(parts[i + 1]);
                after = i + 2;
                break;
            }
        if (layer < 0 || layer >= num_layers) continue;  // globals, MTP layers
        LayerExperts &le = a.layers[static_cast<size_t>(layer)];
        for (size_t j = after; j < parts.size(); ++j) {
            if (parts[j] == "shared_expert" || parts[j] == "shared_experts") le.has_shared_expert = true;
            if (parts[j] != "experts" || j + 1 >= parts.size()) continue;
            const std::string &next = parts[j + 1];
            if (is_number(next) && j + 4 == parts.size() && parts[j + 3] == "weight") {
                int proj = proj_of(parts[j + 2]);
                if (proj >= 0) found[static_cast<size_t>(layer)][std::stoi(next)][static_cast<size_t>(proj)] = name;
            } else if ((j + 2 == parts.size() || (j + 3 == parts.size() && parts[j + 2] == "weight")) &&
                       (next == "gate_up_proj" || next == "down_proj")) {
                (next == "gate_up_proj" ? le.fused_gate_up : le.fused_down) = name;
            }
        }
    }

    for (size_t l = 0; l < a.layers.size(); ++l) {
        LayerExperts &le = a.layers[l];
        const auto &experts = found[l];
        const std::string where = "layer " + std::to_string(l);
        bool fused = !le.fused_gate_up.empty() || !le.fused_down.empty();
        if (fused && !experts.empty())
            fail(KTQ_ERR_FORMAT, where + ": experts are stored both fused and per expert");
        if (fused) {
            if (le.fused_gate_up.empty() || le.fused_down.empty())
                fail(KTQ_ERR_FORMAT, where + ": fused experts need both gate_up_proj and down_proj, found only '" +
                                         (le.fused_gate_up.empty() ? le.fused_down : le.fused_gate_up) + "'");
            const TensorEntry &gu = *ckpt.at(le.fused_gate_up).entry;
            const TensorEntry &dn = *ckpt.at(le.fused_down).entry;
            if (gu.shape.size() != 3 || dn.shape.size() != 3 || gu.shape[0] != dn.shape[0] ||
                gu.shape[1] % 2 != 0 || gu.shape[2] != dn.shape[1] || dn.shape[2] != gu.shape[1] / 2)
                fail(KTQ_ERR_FORMAT, where + ": fused expert shapes do not fit together: '" + gu.name +
                                         "' must be [E, 2I, H] and '" + dn.name + "' [E, H, I]");
            le.storage = KTQ_EXPERTS_FUSED;
            le.num_experts = static_cast<int>(gu.shape[0]);
            le.intermediate = static_cast<int>(dn.shape[2]);
        } else if (!experts.empty()) {
            le.storage = KTQ_EXPERTS_PER_EXPERT;
            // Ids must be 0..E-1: checked before anything is sized by the largest id.
            int expected = 0;
            for (const auto &kv : experts) {
                if (kv.first != expected)
                    fail(KTQ_ERR_FORMAT, where + ": expert " + std::to_string(expected) +
                                             " is missing (next expert id found: " + std::to_string(kv.first) + ")");
                ++expected;
            }
            le.num_experts = experts.rbegin()->first + 1;
            le.per_expert.resize(static_cast<size_t>(le.num_experts));
            for (int e = 0; e < le.num_experts; ++e) {
                auto it = experts.find(e);
                for (int p = 0; p < 3; ++p) {
                    if (it == experts.end() || it->second[static_cast<size_t>(p)].empty())
                        fail(KTQ_ERR_FORMAT, where + ": expert " + std::to_string(e) + " has no " + kProjNames[p] +
                                                 " projection tensor (found experts up to " +
                                                 std::to_string(le.num_experts - 1) + ")");
                }
                le.per_expert[static_cast<size_t>(e)] = it->second;
            }
            const TensorEntry &gate = *ckpt.at(le.per_expert[0][KTQ_PROJ_GATE]).entry;
            le.intermediate = gate.shape.empty() ? 0 : static_cast<int>(gate.shape[0]);
        }
        if (le.storage == KTQ_EXPERTS_NONE) continue;
        if (config.num_experts > 0 && le.num_experts != config.num_experts)
            fail(KTQ_ERR_FORMAT, "config.json says " + std::to_string(config.num_experts) +
                                     " routed experts but " + where + " has " + std::to_string(le.num_experts));
        if (a.storage != KTQ_EXPERTS_NONE && a.storage != le.storage)
            fail(KTQ_ERR_FORMAT, where + ": expert storage differs from earlier layers");
        a.storage = le.storage;
        a.num_experts = le.num_experts;
        a.moe_intermediate = le.intermediate;
        ++a.num_moe_layers;
    }
    while (a.first_dense_layers < static_cast<int>(a.layers.size()) &&
           a.layers[static_cast<size_t>(a.first_dense_layers)].storage == KTQ_EXPERTS_NONE)
        ++a.first_dense_layers;
    if (a.num_moe_layers == 0) a.first_dense_layers = static_cast<int>(a.layers.size());
    if (config.num_experts > 0 && a.num_moe_layers == 0)
        fail(KTQ_ERR_FORMAT, "config.json says " + std::to_string(config.num_experts) +
                                 " routed experts but no expert tensors were found");

    if (a.family == KTQ_ARCH_UNKNOWN) {
        if (a.num_moe_layers > 0) {
            a.family = KTQ_ARCH_GENERIC_MOE;
            a.notice = "model_type '" + config.model_type + "' is not in ktq's table; " +
                       std::to_string(a.num_moe_layers) + " MoE layers with " + std::to_string(a.num_experts) +
                       " experts found from tensor names (" +
                       (a.storage == KTQ_EXPERTS_FUSED ? "fused" : "per-expert") + " storage)";
        } else {
            a.notice = "model_type '" + config.model_type + "' is not in ktq's table; treated as a dense model";
        }
    }
    return a;
}

}  // namespace ktq
