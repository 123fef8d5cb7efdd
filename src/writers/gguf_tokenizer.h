// The tokenizer.ggml.* keys of a GGUF file, from the checkpoint's
// tokenizer.json (byte-level BPE only).
//
// llama.cpp does not read the pre-tokenizer out of the file: it picks its
// own hard-wired split rules by the name in `tokenizer.ggml.pre`. A wrong
// name loads fine and silently tokenizes differently from Hugging Face, so
// the name is derived from what tokenizer.json actually does (its split
// regexes, ByteLevel's own regex, ignore_merges), and a pre-tokenizer that
// matches none of the known ones is refused rather than guessed.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reading/model.h"
#include "writers/gguf_format.h"

namespace ktq::gguf_tokenizer {

// The pre-tokenizer names ktq recognises from tokenizer.json, in the order
// they are tried.
std::vector<std::string> known_pre_names();

// llama.cpp's `tokenizer.ggml.pre` for this tokenizer.json (`path` names it
// in errors). Throws KTQ_ERR_UNSUPPORTED, listing what the file does and the
// known names, when the pre-tokenizer is not one llama.cpp reproduces.
std::string detect_pre(const nlohmann::json &tokenizer, const std::string &path);

// Adds tokenizer.ggml.{model,pre,tokens,token_type,merges}, the special
// token ids and add_bos/add_eos_token (from tokenizer.json's post-processor,
// as Hugging Face encodes). `pre_override` ("" = detect) is written as the
// pre-tokenizer name unchecked, for tokenizers whose llama.cpp name the
// caller knows.
void add_keys(const Model &model, gguf::Metadata &kv, const std::string &pre_override);

}  // namespace ktq::gguf_tokenizer
