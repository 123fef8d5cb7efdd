// GgufEngine - every tensor of the GGUF plan: read as float32 through the
// reader (FP8 dequantized, BF16/F16 widened exactly), rows reordered for
// llama's Q/K permutation, quantized row by row with the ggml block type
// the plan chose (quant/ggml_blocks: one implementation per type) and
// written at its offset. Work is cut by rows (and by expert for stacked
// experts), fixed independently of the thread count.
#pragma once

#include <functional>

#include "engines/engine.h"

namespace ktq {

// Values a calibrating engine (AWQ) computed for the source of an output:
// the whole matrix `view` ([rows, cols] floats; `expert` its expert, or -1),
// or null to read it from the model.
using GgufSourceValues = std::function<const float *(const OutputTensor &t, const MatrixView &view, int expert)>;

// True when the writer's plan for `layer` is GGUF (tensors in ggml types).
bool writes_gguf(Writer &writer, int layer);

// Writes every tensor of writer.tensors_of_layer(layer) as the plan says,
// taking the source values from `values` where it gives them.
void write_gguf_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                      const ktq_quantize_options &opts, const TensorDoneFn &on_tensor, const GgufSourceValues &values);

class GgufEngine : public Engine {
public:
    const char *name() const override { return "gguf"; }
    void run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                   const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) override;
};

}  // namespace ktq
