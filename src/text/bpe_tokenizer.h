// BpeTokenizer - byte-level BPE as Hugging Face `tokenizers` runs it for the
// models ktq supports (GPT-2 style ByteLevel pre-tokenizer, or a Split regex
// followed by ByteLevel as Llama 3 / Qwen ship it), loaded from the model's
// tokenizer.json. Pre-tokenizer regexes run on PCRE2 with Unicode
// properties, so `\p{L}`, `\s`, ... mean what they mean in Oniguruma / the
// `regex` crate that `tokenizers` uses.
//
// Immutable after load except for a word cache guarded by a mutex; encode()
// is safe from many threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ktq {

class PreTokenizerRegex;  // a compiled PCRE2 pattern (bpe_tokenizer.cpp)

class BpeTokenizer {
public:
    // Reads `path` (a tokenizer.json); errors name the file and the field.
    static std::unique_ptr<BpeTokenizer> load(const std::string &path);
    ~BpeTokenizer();

    // Token ids of `text`, as tokenizers' Tokenizer.encode(text).ids
    // (special tokens added by the post-processor included).
    std::vector<int32_t> encode(std::string_view text) const;

    int vocab_size() const { return static_cast<int>(id_to_token_.size()); }
    const std::string &token(int32_t id) const { return id_to_token_.at(static_cast<size_t>(id)); }
    // The ids the post-processor's template puts before / after every text (BOS, EOS, ...).
    const std::vector<int32_t> &prefix_ids() const { return prefix_ids_; }
    const std::vector<int32_t> &suffix_ids() const { return suffix_ids_; }

private:
    BpeTokenizer() = default;
    struct AddedToken {
        std::string content;
        int32_t id;
    };
    // One pre-tokenized piece (raw UTF-8 bytes) through the byte map and the merges.
    void encode_word(std::string_view piece, std::vector<int32_t> &out) const;
    std::vector<int32_t> merge_word(const std::string &mapped) const;
    void encode_ordinary(std::string_view text, std::vector<int32_t> &out) const;

    std::string path_;
    std::unordered_map<std::string, int32_t> vocab_;
    std::vector<std::string> id_to_token_;
    // (left id, right id) -> (rank, merged id)
    std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
    std::vector<AddedToken> added_;          // longest first
    std::vector<std::unique_ptr<PreTokenizerRegex>> splits_;  // applied in order
    bool add_prefix_space_ = false;
    bool ignore_merges_ = false;             // model.ignore_merges: a word in the vocabulary is one token
    bool nfc_ascii_only_ = false;            // NFC normalizer: only ASCII input is accepted
    std::vector<int32_t> prefix_ids_, suffix_ids_;  // TemplateProcessing "single"
    std::string byte_to_unicode_[256];       // GPT-2's printable stand-ins for bytes

    mutable std::mutex cache_mutex_;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace ktq
