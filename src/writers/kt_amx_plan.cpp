#include "writers/kt_amx_plan.h"

#include <algorithm>
#include <set>

#include "reading/dtype.h"
#include "runtime/error.h"
#include "runtime/strings.h"

namespace ktq {

namespace {

// Safetensors' Rust serializer orders a file's tensors by dtype, descending
// in its Dtype enum's declaration order, then by name: reproduce it so the
// merged files come out as kt-kernel's converter writes them.
int safetensors_dtype_rank(ktq_dtype d) {
    switch (d) {
    case KTQ_DTYPE_BOOL: return 0;
    case KTQ_DTYPE_U8: return 4;
    case KTQ_DTYPE_I8: return 5;
    case KTQ_DTYPE_F8_E5M2: return 6;
    case KTQ_DTYPE_F8_E4M3: return 7;
    case KTQ_DTYPE_I16: return 9;
    case KTQ_DTYPE_F16: return 11;
    case KTQ_DTYPE_BF16: return 12;
    case KTQ_DTYPE_I32: return 13;
    case KTQ_DTYPE_F32: return 15;
    case KTQ_DTYPE_F64: return 16;
    case KTQ_DTYPE_I64: return 17;
    default: return -1;
    }
}

}  // namespace

void sort_like_safetensors(std::vector<size_t> &shard, const std::vector<OutputTensor> &tensors) {
    std::sort(shard.begin(), shard.end(), [&](size_t a, size_t b) {
        const int ra = safetensors_dtype_rank(tensors[a].dtype), rb = safetensors_dtype_rank(tensors[b].dtype);
        return ra != rb ? ra > rb : tensors[a].name < tensors[b].name;
    });
}

namespace {

std::string replace_all(std::string s, const std::string &from, const std::string &to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
        s.replace(at, from.size(), to);
    return s;
}

}  // namespace

OutputTensor kt_part_tensor(kt_amx::Method m, int layer, int expert, int proj, int part, uint64_t rows,
                            uint64_t packed_bytes, bool is_scale) {
    OutputTensor t;
    t.name = kt_amx::part_name(layer, proj, expert, part) + (is_scale ? ".scale" : ".weight");
    t.dtype = is_scale ? KTQ_DTYPE_F32 : KTQ_DTYPE_I8;
    t.shape = {static_cast<int64_t>(is_scale ? rows : packed_bytes)};
    t.layer = layer;
    t.expert = expert;
    t.proj = proj;
    t.part = part;
    t.is_scale = is_scale;
    t.file = kt_amx::loose_file(m, layer, proj, expert, part, t.nbytes(), is_scale);
    return t;
}

std::string kt_merged_name(const std::string &hf_name) {
    std::string name = replace_all(hf_name, "language_model.", "");
    if (name.rfind("model.", 0) != 0) return name;  // lm_head.weight, mtp.* stay as they are
    return replace_all(replace_all(name, "model.layers.", "blk."), "model.", "");
}

void add_kt_other_tensors(OutputPlan &plan, const Model &model, const std::set<std::string> &expert_tensors) {
    // Every other tensor as stored, renamed; FP8 scales of experts go with
    // their experts, and experts of MTP layers (beyond num_layers) are not
    // converted and not copied, as kt-kernel does. A quantized AutoAWQ weight
    // travels as its stored parts (qweight, qzeros, scales), as kt-kernel
    // copies the keys it finds.
    const int layers = static_cast<int>(model.arch().layers.size());
    std::vector<size_t> rest;
    std::set<std::string> names;
    for (const OutputTensor &t : plan.tensors) names.insert(t.name);
    for (const auto &name : model.checkpoint().names()) {
        if (expert_tensors.count(name)) continue;
        if (model.is_fp8_scale(name) && ends_with(name, "_scale_inv") &&
            expert_tensors.count(name.substr(0, name.size() - std::string("_scale_inv").size())))
            continue;
        if (name.find(".mlp.experts.") != std::string::npos) continue;  // MTP experts
        std::vector<std::string> stored = {name};
        Model::AwqStored awq;
        if (model.awq_stored(name, &awq))
            stored = {awq.qweight->entry->name, awq.qzeros->entry->name, awq.scales->entry->name};
        for (const std::string &raw : stored) {
            const TensorEntry &e = *model.checkpoint().at(raw).entry;
            OutputTensor t;
            t.name = kt_merged_name(raw);
            if (!names.insert(t.name).second)
                fail(KTQ_ERR_FORMAT, raw + ": its kt-kernel name '" + t.name + "' is taken by another tensor");
            t.source = raw;
            t.dtype = e.dtype;
            t.shape = e.shape;
            const int layer = layer_of_tensor(raw);
            t.layer = (layer >= 0 && layer < layers) ? layer : -1;
            rest.push_back(plan.tensors.size());
            plan.tensors.push_back(std::move(t));
        }
    }
    sort_like_safetensors(rest, plan.tensors);
    plan.shards.push_back(std::move(rest));
}

OutputPlan plan_kt_amx(const Model &model, const KtAmxLayout &layout, const ktq_writer_options &opts) {
    const Architecture &arch = model.arch();
    const std::string model_name = model.checkpoint().dir();
    if (arch.num_moe_layers == 0)
        fail(KTQ_ERR_UNSUPPORTED, model_name + ": " + family_name(arch.family) +
                                      " model without routed experts; the kt-kernel AMX format holds MoE experts only "
                                      "(convert dense models with another format)");
    if (layout.numa_parts < 1 || layout.numa_parts > 64)
        fail(KTQ_ERR_INVALID_ARGUMENT, "threadpool count (NUMA parts) must be 1..64, not " +
                                           std::to_string(layout.numa_parts));
    const uint64_t T = static_cast<uint64_t>(layout.numa_parts);
    const char *prefix = kt_amx::method_prefix(layout.method);

    OutputPlan plan;
    plan.description = std::string("kt-amx ") + prefix + " numa=" + std::to_string(T) + (layout.loose ? " loose" : " merged");
    plan.loose_files = layout.loose;
    plan.pt_metadata = false;

    std::set<std::string> expert_tensors;  // input names consumed by the engine
    const int layers = static_cast<int>(arch.layers.size());
    for (int l = 0; l < layers; ++l) {
        const LayerExperts &le = arch.layers[static_cast<size_t>(l)];
        if (le.storage == KTQ_EXPERTS_NONE) continue;
        std::vector<size_t> shard;
        for (int e = 0; e < le.num_experts; ++e) {
            for (int p = 0; p < 3; ++p) {
                const auto proj = static_cast<ktq_expert_proj>(p);
                const MatrixView v = model.expert(l, e, proj);
                expert_tensors.insert(v.tensor);
                const bool down = proj == KTQ_PROJ_DOWN;
                const uint64_t split = down ? v.cols : v.rows;  // the intermediate dimension
                if (split % T)
                    fail(KTQ_ERR_FORMAT, v.tensor + ": intermediate size " + std::to_string(split) +
                                             " cannot be split into " + std::to_string(T) + " NUMA parts");
                const uint64_t n = down ? v.rows : v.rows / T, k = down ? v.cols / T : v.cols;
                const std::string why = kt_amx::shape_problem(layout.method, n, k);
                if (!why.empty())
                    fail(KTQ_ERR_FORMAT, v.tensor + ": expert " + std::to_string(e) + " " + kt_amx::proj_name(p) +
                                             " part [" + std::to_string(n) + ", " + std::to_string(k) + "] (" +
                                             std::to_string(T) + " NUMA parts) cannot be packed for AMX " + prefix +
                                             ": " + why);
                const uint64_t qbytes = kt_amx::packed_bytes(layout.method, n, k);
                for (uint64_t part = 0; part < T; ++part)
                    for (bool is_scale : {false, true}) {
                        OutputTensor t =
                            kt_part_tensor(layout.method, l, e, p, static_cast<int>(part), n, qbytes, is_scale);
                        t.source = v.tensor;
                        shard.push_back(plan.tensors.size());
                        plan.tensors.push_back(std::move(t));
                    }
            }
        }
        sort_like_safetensors(shard, plan.tensors);
        plan.shards.push_back(std::move(shard));
    }
    if (layout.loose) {
        plan.shards.clear();
        return plan;  // kt-kernel writes nothing but the expert files in this layout
    }

    add_kt_other_tensors(plan, model, expert_tensors);
    plan.config_json = read_text_file(model.checkpoint().dir() + "/config.json");
    if (opts.copy_aux_files)
        for (const char *aux : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
            if (file_exists(model.checkpoint().dir() + "/" + aux)) plan.aux_files.push_back(aux);
    return plan;
}

}  // namespace ktq
