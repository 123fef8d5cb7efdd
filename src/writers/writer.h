// Writer - the interface between engines and output formats.
//
// A writer plans, at open time, every tensor it will store (name, dtype,
// shape, and which input tensor it comes from), grouped by decoder layer. An
// engine then fills those tensors layer by layer through write(), in any
// order and from several threads at once (each byte range written exactly
// once). finish() makes the output visible under its final names; until then
// nothing with a final name exists, and abort() removes everything.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ktq/common.h"
#include "quant/ct_rtn.h"

namespace ktq {

struct OutputTensor {
    std::string name;
    ktq_dtype dtype = KTQ_DTYPE_UNKNOWN;
    std::vector<int64_t> shape;
    std::string source;   // input tensor it is made from
    int layer = -1;       // decoder layer, -1 for globals
    // Routed-expert outputs of quantizing formats (kt-kernel layout): which
    // expert, projection and NUMA part, and whether this is the scale array.
    int expert = -1;
    int proj = -1;        // ktq_expert_proj
    int part = -1;
    bool is_scale = false;
    // Quantized Linear outputs of the compressed-tensors format: which part
    // of the quantized weight this is (all made from `source` together).
    enum class CtPart { None, Packed, Scale, ZeroPoint, Shape };
    CtPart ct_part = CtPart::None;
    ct::Scheme ct_scheme;  // how (ct_part != None)
    // GGUF: the ggml type of the stored blocks (-1 = not GGUF; shape is then
    // in elements, rows of whole blocks), the number of heads of the Q/K row
    // permutation llama.cpp applies (0 = none), and whether this tensor
    // stacks every routed expert of `proj` ([experts, rows, cols]).
    int gguf_type = -1;
    int gguf_permute_heads = 0;
    bool gguf_stacked_experts = false;
    // GGUF, DeepSeek's MLA: llama.cpp splits kv_b_proj ([heads * (nope + v),
    // kv_lora]) per head into attn_k_b (part 1: the head's nope rows,
    // transposed to [kv_lora, nope]) and attn_v_b (part 2: the head's v rows).
    int gguf_mla_part = 0;
    int gguf_mla_heads = 0, gguf_mla_nope = 0, gguf_mla_v = 0;
    // GGUF with an imatrix: the importance of this weight's columns (one row
    // of shape.back() values per slice of a 3-D weight), starting at value
    // gguf_importance_offset of the shared entry; null = quantize without.
    std::shared_ptr<const std::vector<float>> gguf_importance;
    uint64_t gguf_importance_offset = 0;
    // GGUF: a tensor computed by the plan rather than read (source empty):
    // its float32 values, stored in gguf_type (llama's rope_freqs.weight).
    std::shared_ptr<const std::vector<float>> gguf_values;
    // Loose-file layouts: the file's path relative to the output folder.
    std::string file;
    uint64_t nbytes() const;
};

class Writer {
public:
    virtual ~Writer() = default;

    // Output tensors of `layer` (-1 = globals), in a fixed order.
    virtual const std::vector<const OutputTensor *> &tensors_of_layer(int layer) const = 0;
    // Stores `bytes` bytes of `tensor` starting at byte `offset` of its payload.
    // Thread-safe for distinct ranges.
    virtual void write(const OutputTensor &tensor, uint64_t offset, const void *data, size_t bytes) = 0;
    // Marks a layer complete; each layer once.
    virtual void layer_done(int layer) = 0;
    virtual bool is_layer_done(int layer) const = 0;
    virtual void finish() = 0;
    // Engines that learn something while they run (calibration) record it:
    // edits to config.json (formats that write one), and extra files for the
    // output folder. Both are written by finish(), atomically, with the
    // other final files. Not thread-safe: call from the engine's thread.
    virtual void amend_config(const std::function<void(nlohmann::json &)> &edit) = 0;
    virtual void add_file(const std::string &name, std::string content) = 0;
    virtual void abort() noexcept = 0;

    virtual uint64_t output_bytes() const = 0;
    virtual size_t output_files() const = 0;
    virtual int num_layers() const = 0;
};

}  // namespace ktq
