// GgufEngine - every tensor of the GGUF plan: read as float32 through the
// reader (FP8 dequantized, BF16/F16 widened exactly), rows reordered for
// llama's Q/K permutation, quantized row by row with the ggml block type
// the plan chose (quant/ggml_blocks: one implementation per type) and
// written at its offset. Work is cut by rows (and by expert for stacked
// experts), fixed independently of the thread count.
#pragma once

#include "engines/engine.h"

namespace ktq {

class GgufEngine : public Engine {
public:
    const char *name() const override { return "gguf"; }
    void run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                   const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) override;
};

}  // namespace ktq
