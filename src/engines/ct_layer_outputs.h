// The compressed-tensors outputs of one decoder layer, as the calibrating
// engines (GPTQ, AWQ) need them: for each quantized Linear of ktq's forward
// pass its four parts (packed codes, scales, zero points, shape), and the
// outputs that are plain copies (norms, routers, ignored Linears). Also the
// one way those parts are written.
#pragma once

#include <map>
#include <vector>

#include "forward/layer_weights.h"
#include "writers/writer.h"

namespace ktq {

struct CtParts {
    const OutputTensor *packed = nullptr, *scale = nullptr, *zero_point = nullptr, *shape = nullptr;
};

struct CtLayerOutputs {
    std::map<Linear *, CtParts> targets;
    std::vector<const OutputTensor *> copies;
    // The scheme of a quantized Linear, or null when the plan keeps it.
    const ct::Scheme *scheme_of(const Linear *l) const;
};

// Fails with KTQ_ERR_UNSUPPORTED naming the tensor when the plan quantizes a
// weight that is not a Linear of the forward pass (`engine` names the
// caller), and with KTQ_ERR_INTERNAL when a Linear lacks one of its parts.
CtLayerOutputs ct_layer_outputs(Writer &writer, int layer, LayerWeights &w, const std::string &family,
                                const char *engine);

// Writes a quantized Linear [rows, cols]: packed codes (ct::pack_codes /
// quantize_rows layout), scales as raw scheme-dtype bytes, zero-point codes
// [rows, groups] (ignored when symmetric), and the shape.
void write_ct_linear(Writer &writer, const CtParts &parts, const ct::Scheme &s, uint64_t rows, uint64_t cols,
                     const std::vector<uint32_t> &packed, const std::vector<uint8_t> &scales,
                     const std::vector<int8_t> &zero_points);

}  // namespace ktq
