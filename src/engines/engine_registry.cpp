// Which engine serves which (engine, format) pair. New engines (RTN, GPTQ)
// register here.
#include "cuda/cuda_devices.h"
#include "engines/awq_engine.h"
#include "engines/cast_engine.h"
#include "engines/engine.h"
#include "engines/kt_amx_engine.h"
#include "engines/kt_awq_engine.h"
#include "engines/gguf_engine.h"
#include "engines/gptq_engine.h"
#include "engines/rtn_engine.h"
#include "runtime/error.h"

namespace ktq {

std::unique_ptr<Engine> make_engine(ktq_engine engine, ktq_format format, ktq_device device) {
    if (device == KTQ_DEVICE_CUDA && engine == KTQ_ENGINE_AWQ && !cuda_built())
        fail(KTQ_ERR_UNSUPPORTED, "this libktq was built without CUDA (-DKTQ_CUDA=ON): run AWQ with --device cpu");
    if (device == KTQ_DEVICE_CUDA && format != KTQ_FORMAT_COMPRESSED_TENSORS &&
        !(format == KTQ_FORMAT_GGUF && engine == KTQ_ENGINE_AWQ))
        fail(KTQ_ERR_UNSUPPORTED, std::string("the ") + ktq_format_name(format) +
                                      " format has no CUDA engine; compute it on the CPU");
    switch (format) {
    case KTQ_FORMAT_HF_BF16:
        if (engine != KTQ_ENGINE_DEFAULT && engine != KTQ_ENGINE_CAST)
            fail(KTQ_ERR_UNSUPPORTED, "engine " + std::to_string(static_cast<int>(engine)) +
                                          " cannot write the bf16 format (use the cast engine)");
        return std::make_unique<CastEngine>();
    case KTQ_FORMAT_KT_AMXINT4:
    case KTQ_FORMAT_KT_AMXINT8:
        if (engine != KTQ_ENGINE_DEFAULT && engine != KTQ_ENGINE_KT_AMX)
            fail(KTQ_ERR_UNSUPPORTED, "engine " + std::to_string(static_cast<int>(engine)) +
                                          " cannot write the kt-kernel AMX format (use the kt-amx engine)");
        return std::make_unique<KtAmxEngine>(format == KTQ_FORMAT_KT_AMXINT8 ? kt_amx::Method::Int8
                                                                               : kt_amx::Method::Int4);
    case KTQ_FORMAT_KT_AWQ:
        if (engine != KTQ_ENGINE_DEFAULT)
            fail(KTQ_ERR_UNSUPPORTED, "the kt-kernel AWQ layout re-packs AWQ checkpoints as they are (default engine)");
        return std::make_unique<KtAwqEngine>();
    case KTQ_FORMAT_COMPRESSED_TENSORS:
        if (engine == KTQ_ENGINE_GPTQ) {
            if (device == KTQ_DEVICE_CUDA && !cuda_built())
                fail(KTQ_ERR_UNSUPPORTED, "this libktq was built without CUDA (-DKTQ_CUDA=ON): run GPTQ with --device cpu");
            return std::make_unique<GptqEngine>(device == KTQ_DEVICE_CUDA);
        }
        if (engine == KTQ_ENGINE_AWQ) return std::make_unique<AwqEngine>(device == KTQ_DEVICE_CUDA);
        if (engine != KTQ_ENGINE_DEFAULT && engine != KTQ_ENGINE_RTN)
            fail(KTQ_ERR_UNSUPPORTED, "engine " + std::to_string(static_cast<int>(engine)) +
                                          " cannot write the compressed-tensors format (use the rtn, gptq or awq "
                                          "engine)");
        return std::make_unique<RtnEngine>(device == KTQ_DEVICE_CUDA);
    case KTQ_FORMAT_GGUF:
        if (engine == KTQ_ENGINE_AWQ)  // AWQ's folded scales, quantized with the plan's block types
            return std::make_unique<AwqEngine>(device == KTQ_DEVICE_CUDA);
        if (engine != KTQ_ENGINE_DEFAULT && engine != KTQ_ENGINE_GGML)
            fail(KTQ_ERR_UNSUPPORTED, "engine " + std::to_string(static_cast<int>(engine)) +
                                          " cannot write the GGUF format (use the ggml or awq engine)");
        return std::make_unique<GgufEngine>();
    default:
        fail(KTQ_ERR_UNSUPPORTED, "output format " + std::to_string(static_cast<int>(format)) + " is not supported");
    }
}

}  // namespace ktq
