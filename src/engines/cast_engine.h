// CastEngine - dequantizes / casts every tensor to the writer's dtype
// (BF16 for KTQ_FORMAT_HF_BF16). Work is cut into row chunks of about 4 MiB
// of output, converted in parallel into per-task buffers and written straight
// to their final offsets, so memory stays at (threads x chunk) whatever the
// model size, and the bytes never depend on the thread count.
#pragma once

#include <vector>

#include "engines/engine.h"

namespace ktq {

class CastEngine : public Engine {
public:
    const char *name() const override { return "cast"; }
    void run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                   const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) override;
    // The same for a chosen list of output tensors. An output whose dtype is
    // the stored dtype and not BF16/F32 (integers, F16, FP8 copied with its
    // scale) travels as raw bytes.
    void run_tensors(const Model &model, const std::vector<const OutputTensor *> &tensors, Writer &writer,
                     ThreadPool &pool, const ktq_quantize_options &opts, const TensorDoneFn &on_tensor);
};

}  // namespace ktq
