// llama.cpp's GGUF tensor names of a Hugging Face checkpoint's tensors: one
// table for the GGUF writer (writers/gguf_plan.cpp) and for reading GGUF
// weights back over a checkpoint (Model, ktq_open_options.gguf_weights).
#pragma once

#include <string>

namespace ktq {

// The GGUF name of a non-expert tensor ("blk.3.attn_q.weight"), or "" for
// tensors GGUF files do not carry this way (routed experts, which are
// blk.N.ffn_{gate,up,down}_exps.weight stacked or blk.N.ffn_*.E.weight
// split; DeepSeek's kv_b_proj, which llama.cpp splits into attn_k_b and
// attn_v_b; rotary caches; MTP layers).
std::string gguf_tensor_name(const std::string &hf);

}  // namespace ktq
