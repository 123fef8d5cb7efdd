// KtAmxEngine - routed experts -> kt-kernel's AMX INT4/INT8 layout.
//
// Per decoder layer, one task per (expert, projection): the matrix is read
// once as BF16 through the reader (FP8 dequantized, FP16/FP32 rounded to
// BF16, as kt-kernel's converter feeds its kernels), then each NUMA part
// (rows of gate/up, columns of down) is quantized and packed on its own by
// kt_amx::quantize_pack and handed to the writer. Tasks run on the pool;
// each writes distinct tensors, so the bytes never depend on the thread
// count. Memory: one BF16 matrix plus its packed parts per worker.
//
// The plan's other tensors (merged mode copies the non-expert weights) go
// through the cast engine.
#pragma once

#include "engines/engine.h"
#include "quant/kt_amx.h"

namespace ktq {

class KtAmxEngine : public Engine {
public:
    explicit KtAmxEngine(kt_amx::Method method) : method_(method) {}
    const char *name() const override { return "kt-amx"; }
    void run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                   const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) override;

private:
    kt_amx::Method method_;
};

}  // namespace ktq
