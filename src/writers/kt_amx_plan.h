// The output plan of kt-kernel's AMX expert layout (KTQ_FORMAT_KT_AMXINT4 /
// KTQ_FORMAT_KT_AMXINT8), as kt-kernel's convert_cpu_weights.py writes it
// (docs/formats/kt-kernel.md):
//
// merged (default): one safetensors shard per MoE layer holding
//   blk.L.ffn_{gate,up,down}_exps.E.numa.P.{weight (I8, 1-D), scale (F32, 1-D)}
// then one shard with every non-expert tensor as stored (renamed
// model.layers. -> blk., model. dropped), named model-0000k-of-0000N;
// tensors in each file in the order safetensors' serializer gives (dtype
// descending, then name), no header metadata; config.json and tokenizer
// files copied unchanged.
// loose (--no-merge-safetensor): _layer_L/_numa_P/INT4_{gate,up,down}_E_<n>Byte_{quant,scale}_.kt
// and nothing else.
#pragma once

#include <set>
#include <string>

#include "quant/kt_amx.h"
#include "writers/checkpoint_writer.h"

namespace ktq {

struct KtAmxLayout {
    kt_amx::Method method = kt_amx::Method::Int4;
    int numa_parts = 2;  // kt-kernel's --threadpool-count
    bool loose = false;  // --no-merge-safetensor
};

// Throws KTQ_ERR_UNSUPPORTED for a model without routed experts and
// KTQ_ERR_FORMAT naming the tensor when an expert cannot be split or packed.
OutputPlan plan_kt_amx(const Model &model, const KtAmxLayout &layout, const ktq_writer_options &opts);

// Orders the tensors of one file (indices into `tensors`) as safetensors'
// serializer does: dtype descending in its enum order, then name.
void sort_like_safetensors(std::vector<size_t> &shard, const std::vector<OutputTensor> &tensors);

// The weight (I8, packed bytes) or scale (F32, one per row) of one expert
// part, named as kt-kernel names it, with its loose-layout file; the caller
// sets `source`.
OutputTensor kt_part_tensor(kt_amx::Method m, int layer, int expert, int proj, int part, uint64_t rows,
                            uint64_t packed_bytes, bool is_scale);

// The merged layout's last shard: every tensor the experts did not consume
// (`expert_tensors`), as stored and renamed, in safetensors' order.
void add_kt_other_tensors(OutputPlan &plan, const Model &model, const std::set<std::string> &expert_tensors);

// kt-kernel's name for a non-expert tensor in the merged layout.
std::string kt_merged_name(const std::string &hf_name);

}  // namespace ktq
