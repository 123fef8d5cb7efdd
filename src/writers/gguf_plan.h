// The output plan of the GGUF format (KTQ_FORMAT_GGUF): llama.cpp's tensor
// names and metadata for the llama family (Llama, Mixtral written as llama
// with experts), qwen2, qwen3, qwen3moe and deepseek2 (DeepSeek-V3: MLA
// with kv_b_proj split into attn_k_b / attn_v_b); tokenizer.ggml.* from
// tokenizer.json (byte-level BPE, "gpt2"); the Q/K row permutation llama.cpp
// applies to llama's non-NeoX RoPE; routed experts stacked
// (blk.N.ffn_{gate,up,down}_exps.weight, llama.cpp and Candle's qwen3-moe)
// or split per expert (blk.N.ffn_{gate,up,down}.E.weight, Candle's
// quantized_llama). Weights get the chosen ggml type; norms, biases and
// routers stay F32, as llama.cpp keeps them; or per-tensor types of a
// llama-quantize mixture (gguf_mix.h); a weight whose row length does not fit
// the type's block gets llama-quantize's replacement type.
#pragma once

#include <memory>
#include <string>

#include "ktq/quant.h"
#include "writers/checkpoint_writer.h"
#include "writers/gguf_format.h"

namespace ktq {

struct GgufLayout {
    ktq_ggml_type type = KTQ_GGML_Q8_0;
    bool split_experts = false;
    // "REGEX=TYPE" rules, first match wins (llama-quantize's --tensor-type).
    std::vector<std::string> tensor_types;
    // A mixture name ("Q4_K_M", "MOE_Q4_K", ...; see gguf_mix.h) instead of one `type`; "" = none.
    std::string mix;
    // llama.cpp's pre-tokenizer name to write instead of the detected one; "" = detect (gguf_tokenizer.h).
    std::string tokenizer_pre;
    // An importance matrix file (llama-imatrix's GGUF or legacy .dat) to quantize with, as
    // llama-quantize --imatrix does; "" = none.
    std::string imatrix;
    // ktq's routing_stats.json (from --engine gptq's calibration) to record as
    // ktq.routing.blk.N.expert_tokens; "" = from the imatrix's counts, if any.
    std::string routing_stats;
    // Record the SHA-256 of every source file (ktq.source.sha256): reads the checkpoint once more.
    bool source_sha256 = false;
};

// Throws KTQ_ERR_UNSUPPORTED for an architecture whose llama.cpp metadata is
// not written yet (named), KTQ_ERR_FORMAT for a missing tokenizer.json.
OutputPlan plan_gguf(const Model &model, const GgufLayout &layout, const ktq_writer_options &opts);

}  // namespace ktq
