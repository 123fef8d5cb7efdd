// Which engine serves which (engine, format) pair. New engines (AMX, RTN,
// GPTQ) register here.
#include "engines/cast_engine.h"
#include "engines/engine.h"
#include "runtime/error.h"

namespace ktq {

std::unique_ptr<Engine> make_engine(ktq_engine engine, ktq_format format) {
    if (format != KTQ_FORMAT_HF_BF16)
        fail(KTQ_ERR_UNSUPPORTED, "output format " + std::to_string(static_cast<int>(format)) + " is not supported");
    if (engine != KTQ_ENGINE_DEFAULT && engine != KTQ_ENGINE_CAST)
        fail(KTQ_ERR_UNSUPPORTED, "engine " + std::to_string(static_cast<int>(engine)) +
                                      " cannot write the bf16 format (use the cast engine)");
    return std::make_unique<CastEngine>();
}

}  // namespace ktq
