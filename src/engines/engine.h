// Engine - turns the input tensors of one decoder layer into the output
// tensors a Writer has planned. Engines are stateless between layers, so
// layers may be processed in any order, resumed, or spread over processes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ktq/writer.h"
#include "reading/model.h"
#include "writers/writer.h"

namespace ktq {

// Called after each output tensor; returns false to cancel.
using TensorDoneFn = std::function<bool(const std::string &tensor, uint64_t input_bytes)>;

class Engine {
public:
    virtual ~Engine() = default;
    virtual const char *name() const = 0;
    // Produces every tensor of writer.tensors_of_layer(layer).
    virtual void run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                           const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) = 0;
};

// The engine for (engine, format); throws KTQ_ERR_UNSUPPORTED for pairs that
// do not fit together.
std::unique_ptr<Engine> make_engine(ktq_engine engine, ktq_format format, ktq_device device = KTQ_DEVICE_CPU);

}  // namespace ktq
