#include "writers/kt_awq_plan.h"

#include <set>

#include "quant/kt_amx.h"
#include "reading/dtype.h"
#include "runtime/error.h"
#include "runtime/strings.h"
#include "writers/kt_amx_plan.h"

namespace ktq {

OutputPlan plan_kt_awq(const Model &model, const ktq_writer_options &opts) {
    const Architecture &arch = model.arch();
    const std::string model_name = model.checkpoint().dir();
    if (arch.num_moe_layers == 0)
        fail(KTQ_ERR_UNSUPPORTED, model_name + ": " + family_name(arch.family) +
                                      " model without routed experts; the kt-kernel AWQ layout holds MoE experts only");
    if (opts.loose_files)
        fail(KTQ_ERR_UNSUPPORTED, "kt-kernel's AWQ layout has no loose files (its converter writes nothing for "
                                  "--quant-method awq with --no-merge-safetensor); write merged safetensors");
    OutputPlan plan;
    plan.description = "kt-awq merged";
    plan.pt_metadata = false;
    std::set<std::string> expert_tensors;
    const int layers = static_cast<int>(arch.layers.size());
    for (int l = 0; l < layers; ++l) {
        const LayerExperts &le = arch.layers[static_cast<size_t>(l)];
        if (le.storage == KTQ_EXPERTS_NONE) continue;
        std::vector<size_t> shard;
        for (int e = 0; e < le.num_experts; ++e)
            for (int p = 0; p < 3; ++p) {
                const MatrixView v = model.expert(l, e, static_cast<ktq_expert_proj>(p));
                Model::AwqStored st;
                if (!model.awq_stored(v.tensor, &st))
                    fail(KTQ_ERR_UNSUPPORTED, model_name + ": expert tensor '" + v.tensor +
                                                  "' is not AutoAWQ-packed (qweight/qzeros/scales); kt-kernel's AWQ "
                                                  "layout re-packs AWQ checkpoints (use --quant-method int4/int8 "
                                                  "for others)");
                expert_tensors.insert(v.tensor);
                const uint64_t groups = st.cols / st.group;
                const std::string base =
                    "blk." + std::to_string(l) + ".ffn_" + kt_amx::proj_name(p) + "_exps." + std::to_string(e);
                auto add = [&](const std::string &suffix, ktq_dtype dtype, std::vector<int64_t> shape) {
                    OutputTensor t;
                    t.name = base + suffix;
                    t.dtype = dtype;
                    t.shape = std::move(shape);
                    t.source = v.tensor;
                    t.layer = l;
                    t.expert = e;
                    t.proj = p;
                    t.part = suffix == ".weight" ? 0 : suffix == ".qzeros" ? 1 : 2;
                    shard.push_back(plan.tensors.size());
                    plan.tensors.push_back(std::move(t));
                };
                add(".weight", KTQ_DTYPE_I32, {static_cast<int64_t>(st.rows), static_cast<int64_t>(st.cols / 8)});
                add(".qzeros", KTQ_DTYPE_I32, {static_cast<int64_t>(groups), static_cast<int64_t>(st.rows / 8)});
                add(".scale", st.scales->entry->dtype, {static_cast<int64_t>(groups * st.rows)});
            }
        sort_like_safetensors(shard, plan.tensors);
        plan.shards.push_back(std::move(shard));
    }
    add_kt_other_tensors(plan, model, expert_tensors);
    plan.config_json = read_text_file(model_name + "/config.json");
    if (opts.copy_aux_files)
        for (const char *aux : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
            if (file_exists(model_name + "/" + aux)) plan.aux_files.push_back(aux);
    return plan;
}

}  // namespace ktq
