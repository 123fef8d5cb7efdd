// The output plan of the compressed-tensors format (KTQ_FORMAT_COMPRESSED_TENSORS),
// "pack-quantized" as llm-compressor saves it (docs/formats/compressed-tensors.md):
// every Linear weight chosen by the targets and not ignored becomes
//   X.weight_packed     I32 [out, ceil(in * bits / 32)]   codes, LSB first
//   X.weight_scale      dtype [out, in / group]           (group -1: [out, 1])
//   X.weight_zero_point I32 [ceil(out * bits / 32), groups]   asymmetric only
//   X.weight_shape      I64 [2] = [out, in]
// every other tensor is kept (floating ones in the model's dtype; FP8
// blocks dequantized, their scales dropped), and config.json gains the
// quantization_config compressed-tensors writes.
#pragma once

#include <string>
#include <vector>

#include "quant/ct_rtn.h"
#include "writers/checkpoint_writer.h"

namespace ktq {

struct CtLayout {
    ct::Scheme scheme;                 // scheme.dtype: the model's (ct_model_dtype)
    std::vector<std::string> targets;  // compressed-tensors targets: "Linear", module names, "re:REGEX"
    std::vector<std::string> ignore;   // same syntax
};

// The patterns kt-kernel's convert_gpu_weights.py ignores (lm_head, routers,
// attention, shared experts and their gate, linear attention), plus the
// first_k_dense_replace dense MLP layers of DeepSeek-style models.
std::vector<std::string> default_ct_ignore(const Model &model);

// The dtype transformers loads the model in (config dtype / torch_dtype;
// BF16 for FP8 checkpoints and when the config names none).
ktq_dtype ct_model_dtype(const Model &model);

// Splits a newline-separated pattern list; a pattern without "re:" that is
// neither "Linear" nor a plain module name is taken as a regex ("re:" added).
std::vector<std::string> parse_ct_patterns(const char *text);

// Throws KTQ_ERR_INVALID_ARGUMENT for a bad scheme or pattern, KTQ_ERR_FORMAT
// naming the tensor for a weight the scheme cannot quantize.
OutputPlan plan_compressed_tensors(const Model &model, const CtLayout &layout, const ktq_writer_options &opts);

}  // namespace ktq
