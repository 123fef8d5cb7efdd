// The output plan of KTQ_FORMAT_HF_BF16 (see checkpoint_writer.h).
#include <algorithm>

#include "reading/dtype.h"
#include "writers/checkpoint_writer.h"

namespace ktq {

namespace {

std::string bf16_config(const Model &model) {
    nlohmann::ordered_json cfg = model.config().raw;
    // The weights are plain BF16 now: an fp8 quantization_config would make
    // transformers try to load them as FP8.
    for (nlohmann::ordered_json *scope : {&cfg, cfg.contains("text_config") ? &cfg["text_config"] : nullptr}) {
        if (!scope || !scope->is_object()) continue;
        scope->erase("quantization_config");
        bool has_any = scope->contains("dtype") || scope->contains("torch_dtype");
        if (scope->contains("dtype")) (*scope)["dtype"] = "bfloat16";
        if (scope->contains("torch_dtype")) (*scope)["torch_dtype"] = "bfloat16";
        if (!has_any && scope == &cfg) (*scope)["torch_dtype"] = "bfloat16";
    }
    return cfg.dump(2) + "\n";
}

}  // namespace

OutputPlan plan_bf16_checkpoint(const Model &model, const ktq_writer_options &opts) {
    OutputPlan plan;
    plan.description = "hf-bf16";
    const int layers = static_cast<int>(model.arch().layers.size());
    for (const auto &name : model.checkpoint().names()) {
        if (model.is_fp8_scale(name)) continue;
        const TensorEntry &e = *model.checkpoint().at(name).entry;
        OutputTensor t;
        t.name = name;
        t.source = name;
        t.dtype = dtype_is_float(e.dtype) ? KTQ_DTYPE_BF16 : e.dtype;
        t.shape = e.shape;
        int layer = layer_of_tensor(name);
        t.layer = (layer >= 0 && layer < layers) ? layer : -1;  // MTP layers go with the globals
        plan.tensors.push_back(std::move(t));
    }
    // State-dict order: layers ascending, then globals; names sorted within.
    std::stable_sort(plan.tensors.begin(), plan.tensors.end(), [](const OutputTensor &a, const OutputTensor &b) {
        unsigned la = static_cast<unsigned>(a.layer), lb = static_cast<unsigned>(b.layer);  // -1 sorts last
        return la != lb ? la < lb : a.name < b.name;
    });
    plan.config_json = bf16_config(model);
    if (opts.copy_aux_files) plan.aux_files = model_aux_files(model);
    return plan;
}

}  // namespace ktq
