#include "forward/layer_weights.h"

#include "runtime/error.h"

namespace ktq {

std::vector<float> load_vector(const Model &model, const std::string &tensor, bool required) {
    if (!model.checkpoint().find(tensor)) {
        if (required) fail(KTQ_ERR_NOT_FOUND, model.checkpoint().dir() + ": tensor " + tensor + " is missing");
        return {};
    }
    const MatrixView v = model.matrix(tensor);
    std::vector<float> out(v.rows * v.cols);
    model.read(v, KTQ_DTYPE_F32, out.data());
    return out;
}

namespace {

Linear from_view(const Model &model, const MatrixView &v, std::string name) {
    Linear l;
    l.name = std::move(name);
    l.out = static_cast<int64_t>(v.rows);
    l.in = static_cast<int64_t>(v.cols);
    l.w.resize(v.rows * v.cols);
    model.read(v, KTQ_DTYPE_F32, l.w.data());
    return l;
}

std::string strip_weight(const std::string &tensor) {
    const std::string tail = ".weight";
    if (tensor.size() > tail.size() && tensor.compare(tensor.size() - tail.size(), tail.size(), tail) == 0)
        return tensor.substr(0, tensor.size() - tail.size());
    return tensor;
}

}  // namespace

Linear load_linear(const Model &model, const std::string &module, bool required) {
    const std::string wname = module + ".weight";
    if (!model.checkpoint().find(wname)) {
        if (required) fail(KTQ_ERR_NOT_FOUND, model.checkpoint().dir() + ": tensor " + wname + " is missing");
        return {};
    }
    Linear l = from_view(model, model.matrix(wname), module);
    l.b = load_vector(model, module + ".bias", false);
    if (!l.b.empty() && static_cast<int64_t>(l.b.size()) != l.out)
        fail(KTQ_ERR_FORMAT, model.checkpoint().dir() + ": " + module + ".bias has " + std::to_string(l.b.size()) +
                                 " values for " + std::to_string(l.out) + " outputs");
    return l;
}

LayerWeights load_layer(const Model &model, const ForwardConfig &cfg, int layer) {
    LayerWeights w;
    w.layer = layer;
    const std::string p = cfg.layer_prefix(layer);
    w.input_norm = load_vector(model, p + "input_layernorm.weight");
    w.post_norm = load_vector(model, p + "post_attention_layernorm.weight");
    const std::string a = p + "self_attn.";
    if (cfg.mla) {
        if (cfg.q_lora_rank > 0) {
            w.q_a = load_linear(model, a + "q_a_proj");
            w.q_a_norm = load_vector(model, a + "q_a_layernorm.weight");
            w.q_b = load_linear(model, a + "q_b_proj");
        } else {
            w.q = load_linear(model, a + "q_proj");
        }
        w.kv_a = load_linear(model, a + "kv_a_proj_with_mqa");
        w.kv_a_norm = load_vector(model, a + "kv_a_layernorm.weight");
        w.kv_b = load_linear(model, a + "kv_b_proj");
    } else {
        w.q = load_linear(model, a + "q_proj");
        w.k = load_linear(model, a + "k_proj");
        w.v = load_linear(model, a + "v_proj");
        w.q_norm = load_vector(model, a + "q_norm.weight", false);
        w.k_norm = load_vector(model, a + "k_norm.weight", false);
    }
    w.o = load_linear(model, a + "o_proj");
    const LayerExperts &le = model.arch().layers.at(static_cast<size_t>(layer));
    w.moe = cfg.moe_layer.at(static_cast<size_t>(layer));
    if (!w.moe) {
        w.gate = load_linear(model, p + "mlp.gate_proj");
        w.up = load_linear(model, p + "mlp.up_proj");
        w.down = load_linear(model, p + "mlp.down_proj");
        return w;
    }
    const bool mixtral = model.checkpoint().find(p + "block_sparse_moe.gate.weight") != nullptr;
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    w.router = load_linear(model, moe + "gate");
    w.router_bias = load_vector(model, moe + "gate.e_score_correction_bias", false);
    if (cfg.router == RouterKind::SigmoidGrouped && w.router_bias.size() != static_cast<size_t>(cfg.num_experts))
        fail(KTQ_ERR_FORMAT, model.checkpoint().dir() + ": " + moe + "gate.e_score_correction_bias missing or of the "
                                                                  "wrong size for DeepSeek-V3 routing");
    if (w.router.out != cfg.num_experts)
        fail(KTQ_ERR_FORMAT, model.checkpoint().dir() + ": router " + w.router.name + " has " +
                                 std::to_string(w.router.out) + " outputs for " + std::to_string(cfg.num_experts) +
                                 " experts");
    w.experts.resize(static_cast<size_t>(le.num_experts));
    for (int e = 0; e < le.num_experts; ++e) {
        ExpertWeights &ew = w.experts[static_cast<size_t>(e)];
        const MatrixView g = model.expert(layer, e, KTQ_PROJ_GATE), u = model.expert(layer, e, KTQ_PROJ_UP),
                         d = model.expert(layer, e, KTQ_PROJ_DOWN);
        auto name = [&](const MatrixView &v, const char *proj) {
            return le.storage == KTQ_EXPERTS_PER_EXPERT ? strip_weight(v.tensor)
                                                        : moe + "experts." + std::to_string(e) + "." + proj;
        };
        ew.gate = from_view(model, g, name(g, "gate_proj"));
        ew.up = from_view(model, u, name(u, "up_proj"));
        ew.down = from_view(model, d, name(d, "down_proj"));
    }
    for (const char *shared : {"shared_experts", "shared_expert"}) {
        const std::string s = moe + shared + ".";
        if (!model.checkpoint().find(s + "gate_proj.weight")) continue;
        w.has_shared = true;
        w.shared.gate = load_linear(model, s + "gate_proj");
        w.shared.up = load_linear(model, s + "up_proj");
        w.shared.down = load_linear(model, s + "down_proj");
    }
    w.shared_gate = load_linear(model, moe + "shared_expert_gate", false);
    return w;
}

std::vector<Linear *> LayerWeights::quantizable() {
    std::vector<Linear *> out;
    for (Linear *l : {&q_a, &q_b, &q, &kv_a, &kv_b, &k, &v, &o, &gate, &up, &down})
        if (!l->empty()) out.push_back(l);
    for (ExpertWeights &e : experts)
        for (Linear *l : {&e.gate, &e.up, &e.down}) out.push_back(l);
    if (has_shared)
        for (Linear *l : {&shared.gate, &shared.up, &shared.down}) out.push_back(l);
    return out;
}

}  // namespace ktq
