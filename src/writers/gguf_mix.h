// Per-tensor ggml types of a GGUF "mixture": llama-quantize's named file
// types (Q4_K_M, Q5_K_S, ...), which give attention-v, ffn_down, the output
// and a few other weights more bits than the base type by layer position and
// model shape, and ktq's MoE mixtures (MOE_Q4_K, ...), which put the routed
// experts in the low-bit type and everything else in Q8_0.
//
// The choice reproduces llama.cpp's llama_tensor_get_type (src/llama-quant.cpp
// of the llama-cpp-python 0.3.36 sdist, with or without an imatrix), so a ktq file of
// a mixture has the tensor types, and hence the bytes, llama-quantize writes
// for it (tests/interop/llama_quantize_bytes.sh checks; the types are golden
// in tests/golden/gguf_mix_types.json).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ktq/quant.h"

namespace ktq::gguf_mix {

struct Mix {
    std::string name;       // "Q4_K_M"
    ktq_ggml_type base;     // the type of weights no rule promotes
    uint32_t file_type;     // llama.cpp's general.file_type (llama_ftype)
    bool moe = false;       // ktq's MoE mixture: experts `base`, other weights Q8_0
};

// The mixture called `name`, or nullopt.
std::optional<Mix> find(const std::string &name);
// Every mixture name, for error messages and --help.
std::vector<std::string> names();

// What the choice depends on, besides the tensor's own name.
struct ModelFacts {
    int layers = 0;            // decoder layers (llama.cpp's n_layer_all)
    int heads = 0, kv_heads = 0;
    int experts = 0;           // routed experts per layer (0 = dense)
    bool is_llama_70b = false; // llama.cpp's LLM_TYPE_70B: attn_v of Q3_K/Q4_K goes up to Q5_K
    bool has_output = true;    // output.weight present (else token_embd is treated as the output)
    int attn_v_count = 0;      // attn_v / attn_qkv / attn_kv_b weights in the file
    bool has_imatrix = false;  // quantized with an importance matrix
};

// The type of quantizable weight `gguf_name` (a 2-D or stacked 3-D weight
// llama-quantize would quantize), whose rows are `row_length` long.
// `attn_v_index` counts the attn_v-like weights before this one in file order.
ktq_ggml_type choose(const Mix &mix, const ModelFacts &facts, const std::string &gguf_name, int attn_v_index,
                     uint64_t row_length);

// llama-quantize's replacement for a type whose block does not divide the row
// length (Q4_K -> Q5_0, Q6_K -> Q8_0, ...; F16 when even that does not fit).
ktq_ggml_type fit_row(ktq_ggml_type wanted, uint64_t row_length);

// attn_v-like: the weights llama.cpp counts in its attn_v position.
bool is_attn_v_like(const std::string &gguf_name);

}  // namespace ktq::gguf_mix
