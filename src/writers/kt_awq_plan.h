// The output plan of kt-kernel's AWQ expert layout (KTQ_FORMAT_KT_AWQ), as
// kt-kernel's convert_cpu_weights.py --input-type awq --quant-method awq
// writes it (docs/formats/kt-kernel.md section 7), from an AutoAWQ
// checkpoint: one safetensors shard per MoE layer holding, per routed
// expert and projection,
//   blk.L.ffn_{gate,up,down}_exps.E.weight (I32 [out, in / 8]),
//   .qzeros (I32 [groups, out / 8]) and .scale (the scales' dtype, 1-D)
// (quant/kt_awq.h; no NUMA split), then one shard with every other tensor as
// stored - AWQ parts of attention included - renamed as in the AMX layout;
// config.json and tokenizer files copied. kt-kernel writes nothing at all
// for AWQ with --no-merge-safetensor, so there is no loose layout.
#pragma once

#include "writers/checkpoint_writer.h"

namespace ktq {

// Throws KTQ_ERR_UNSUPPORTED for a model without routed experts or whose
// experts are not AutoAWQ-packed, naming the tensor.
OutputPlan plan_kt_awq(const Model &model, const ktq_writer_options &opts);

}  // namespace ktq
