// KtAwqEngine - AutoAWQ experts re-packed into kt-kernel's AWQ layout
// (quant/kt_awq.h, writers/kt_awq_plan.h): integer re-packing only, so the
// bytes never depend on the CPU or the thread count. Other tensors are
// copied as stored (CastEngine).
#pragma once

#include "engines/engine.h"

namespace ktq {

class KtAwqEngine : public Engine {
public:
    const char *name() const override { return "kt-awq"; }
    void run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool, const ktq_quantize_options &opts,
                   const TensorDoneFn &on_tensor) override;
};

}  // namespace ktq
