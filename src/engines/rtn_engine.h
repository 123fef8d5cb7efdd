// RtnEngine - round-to-nearest quantization of Linear weights into the
// compressed-tensors pack-quantized layout (W4A16 / W8A16, group or channel,
// symmetric or with zero points), on CPU or on a CUDA device.
//
// Each quantized weight is cut into chunks of whole 32-row blocks (so every
// chunk owns whole words of the zero points packed along the rows); a chunk
// is read in the model's dtype through the reader (FP8 dequantized as
// transformers would), quantized by ct::quantize_rows (CPU) or its CUDA
// twin, and its packed codes, scales and zero points are written at their
// offsets. Chunk boundaries never depend on the thread count, so neither do
// the bytes. The plan's other tensors go through the cast engine.
#pragma once

#include "engines/engine.h"

namespace ktq {

class RtnEngine : public Engine {
public:
    explicit RtnEngine(bool cuda) : cuda_(cuda) {}
    const char *name() const override { return cuda_ ? "rtn-cuda" : "rtn"; }
    void run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                   const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) override;

private:
    bool cuda_;
};

}  // namespace ktq
