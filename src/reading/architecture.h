// Architecture - which model family a checkpoint is, and where its routed
// experts are, per decoder layer.
//
// The family comes from config.json's model_type; the experts are found from
// tensor names, so that a MoE model of a family ktq has never heard of is
// still handled when its tensors follow one of the hub naming schemes:
//   per expert:  ...layers.L.<...>.experts.E.{gate_proj,up_proj,down_proj}.weight
//                ...layers.L.<...>.experts.E.{w1,w3,w2}.weight   (w1 gate, w3 up, w2 down)
//   fused (transformers 5):
//                ...layers.L.<...>.experts.gate_up_proj  [E, 2I, H], gate rows first
//                ...layers.L.<...>.experts.down_proj     [E, H, I]
#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include "ktq/model.h"
#include "reading/checkpoint.h"
#include "reading/model_config.h"

namespace ktq {

struct LayerExperts {
    ktq_expert_storage storage = KTQ_EXPERTS_NONE;
    int num_experts = 0;
    // Per-expert storage: tensor names indexed [expert][proj].
    std::vector<std::array<std::string, 3>> per_expert;
    // Fused storage.
    std::string fused_gate_up, fused_down;
    int intermediate = 0;  // one expert's intermediate width
    bool has_shared_expert = false;
};

struct Architecture {
    ktq_arch_family family = KTQ_ARCH_UNKNOWN;
    std::vector<LayerExperts> layers;  // one per decoder layer
    std::string notice;                // "" or what the user should know
    int first_dense_layers = 0;
    int num_moe_layers = 0;
    int num_experts = 0;
    int moe_intermediate = 0;
    ktq_expert_storage storage = KTQ_EXPERTS_NONE;

    // Throws KTQ_ERR_FORMAT when the tensors contradict the config (expert
    // counts, missing projections, fused shapes).
    static Architecture detect(const ModelConfig &config, const Checkpoint &ckpt);
};

ktq_arch_family family_from_model_type(const std::string &model_type);
const char *family_name(ktq_arch_family family);

// Decoder layer of a tensor name ("model.layers.12.mlp..." -> 12), or -1.
int layer_of_tensor(const std::string &name);

}  // namespace ktq
