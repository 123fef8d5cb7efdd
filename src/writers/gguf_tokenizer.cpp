#include "writers/gguf_tokenizer.h"

#include <algorithm>

#include "runtime/error.h"
#include "writers/checkpoint_writer.h"
#include "text/bpe_tokenizer.h"

namespace ktq::gguf_tokenizer {

namespace {

using nlohmann::json;

// What a tokenizer.json pre-tokenizer does, reduced to the parts that decide
// how text is cut into words before the merges.
struct PreSignature {
    std::vector<std::string> splits;  // Split(Regex, Isolated) patterns, in order
    bool byte_level_regex = false;    // ByteLevel's own GPT-2 split (use_regex)
    bool ignore_merges = false;       // model.ignore_merges
};

// A pre-tokenizer llama.cpp reproduces under `name`. The patterns are the
// ones the models ship in tokenizer.json; llama.cpp has its own (sometimes
// rewritten) copy of each, selected by the name. Which name goes with which
// pattern was read from llama.cpp's llama-vocab.cpp and checked by running
// llama.cpp's tokenizer against Hugging Face's (tests/interop/llama_cpp_tokenize.sh).
struct KnownPre {
    const char *name;
    PreSignature sig;
};

// Llama 3 (and GLM-4 / DBRX, which share it); digits in runs of up to three.
const char *const kLlama3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Qwen2 / Qwen2.5 / Qwen3 (dense and MoE): single digits.
const char *const kQwen2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Qwen3.5: letters may carry combining marks.
const char *const kQwen35 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// DeepSeek-V3 / R1: three splits in sequence (digits, CJK runs, the rest).
const char *const kDeepSeekV3Digits = "\\p{N}{1,3}";
const char *const kDeepSeekV3Cjk = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
const char *const kDeepSeekV3Rest =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const std::vector<KnownPre> &known() {
    static const std::vector<KnownPre> table = {
        {"gpt-2", {{}, true, false}},
        {"llama-bpe", {{kLlama3}, false, true}},
        {"qwen2", {{kQwen2}, false, false}},
        {"qwen35", {{kQwen35}, false, false}},
        {"deepseek-v3", {{kDeepSeekV3Digits, kDeepSeekV3Cjk, kDeepSeekV3Rest}, false, false}},
    };
    return table;
}

// A pattern with literal CR/LF/TAB characters means the same as one that
// spells them as escapes; tokenizer.json files exist in both spellings.
std::string canonical_pattern(const std::string &p) {
    std::string out;
    for (char c : p) {
        if (c == '\r') out += "\\r";
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else out += c;
    }
    return out;
}

std::string describe(const PreSignature &s) {
    std::string d = "splits [";
    for (size_t i = 0; i < s.splits.size(); ++i) d += (i ? ", \"" : "\"") + s.splits[i] + "\"";
    d += "], ByteLevel use_regex " + std::string(s.byte_level_regex ? "true" : "false");
    d += ", ignore_merges " + std::string(s.ignore_merges ? "true" : "false");
    return d;
}

}  // namespace

std::vector<std::string> known_pre_names() {
    std::vector<std::string> names;
    for (const auto &k : known()) names.emplace_back(k.name);
    return names;
}

std::string detect_pre(const json &tok, const std::string &path) {
    std::string known_list;
    for (const auto &n : known_pre_names()) known_list += (known_list.empty() ? "" : ", ") + n;
    auto refuse = [&](const std::string &what) -> std::string {
        fail(KTQ_ERR_UNSUPPORTED,
             path + ": " + what + "; llama.cpp picks its split rules by the name in tokenizer.ggml.pre, and ktq "
                                  "recognises " + known_list + ". If you know llama.cpp's name for this tokenizer, "
                                  "give it with --tokenizer-pre NAME (C API: ktq_writer_options.gguf_tokenizer_pre)");
    };
    PreSignature sig;
    const json &model = tok.contains("model") ? tok["model"] : json();
    if (model.is_object()) sig.ignore_merges = model.value("ignore_merges", false);
    // llama.cpp's BPE vocabularies normalize nothing; NFC (Qwen's) leaves the ASCII and already-composed text
    // that models see unchanged, and llama.cpp's own conversions accept it the same way.
    const json &norm = tok.contains("normalizer") ? tok["normalizer"] : json();
    if (!norm.is_null() && !(norm.is_object() && norm.value("type", "") == "NFC"))
        return refuse("normalizer " + norm.dump() + " has no llama.cpp counterpart");
    const json &pre = tok.contains("pre_tokenizer") ? tok["pre_tokenizer"] : json();
    if (!pre.is_object()) return refuse("no pre_tokenizer");
    std::vector<json> steps;
    if (pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array())
        steps.assign(pre["pretokenizers"].begin(), pre["pretokenizers"].end());
    else
        steps.push_back(pre);
    bool byte_level = false;
    for (const json &s : steps) {
        const std::string type = s.is_object() ? s.value("type", "") : "";
        if (type == "ByteLevel") {
            if (byte_level) return refuse("two ByteLevel pre-tokenizer steps");
            byte_level = true;
            if (s.value("add_prefix_space", false)) return refuse("ByteLevel add_prefix_space is true");
            sig.byte_level_regex = s.value("use_regex", true);
        } else if (type == "Split" && s.contains("pattern") && s["pattern"].is_object() &&
                   s["pattern"].contains("Regex") && s["pattern"]["Regex"].is_string() &&
                   s.value("behavior", "") == "Isolated" && !s.value("invert", false) && !byte_level) {
            sig.splits.push_back(canonical_pattern(s["pattern"]["Regex"].get<std::string>()));
        } else {
            return refuse("pre-tokenizer step " + s.dump().substr(0, 200) + " has no llama.cpp counterpart");
        }
    }
    if (!byte_level) return refuse("the pre-tokenizer has no ByteLevel step (not a byte-level BPE tokenizer)");
    for (const auto &k : known()) {
        std::vector<std::string> want;
        for (const auto &p : k.sig.splits) want.push_back(canonical_pattern(p));
        if (want == sig.splits && k.sig.byte_level_regex == sig.byte_level_regex &&
            k.sig.ignore_merges == sig.ignore_merges)
            return k.name;
    }
    return refuse("the pre-tokenizer (" + describe(sig) + ") is none that llama.cpp is known to reproduce");
}

void add_keys(const Model &model, gguf::Metadata &kv, const std::string &pre_override) {
    const std::string path = model.checkpoint().dir() + "/tokenizer.json";
    if (!file_exists(path))
        fail(KTQ_ERR_FORMAT, model.checkpoint().dir() + ": no tokenizer.json (GGUF files carry the tokenizer)");
    json tok;
    try {
        tok = json::parse(read_text_file(path));
    } catch (const json::exception &e) {
        fail(KTQ_ERR_FORMAT, path + ": " + std::string(e.what()));
    }
    const auto &m = tok["model"];
    if (!m.is_object() || m.value("type", "") != "BPE" || !m["vocab"].is_object())
        fail(KTQ_ERR_UNSUPPORTED, path + ": only byte-level BPE tokenizers are exported to GGUF so far");
    // Loading it as ktq's tokenizer refuses what is not byte-level BPE (SentencePiece-style byte_fallback,
    // Metaspace, unknown normalizers) by name, and gives the ids its post-processor adds.
    const auto encoder = BpeTokenizer::load(path);
    const std::string pre = pre_override.empty() ? detect_pre(tok, path) : pre_override;

    const int vocab = std::max<int>(model.config().vocab_size, static_cast<int>(m["vocab"].size()));
    std::vector<std::string> tokens(static_cast<size_t>(vocab));
    std::vector<int32_t> types(static_cast<size_t>(vocab), 1);  // 1 = normal
    std::vector<bool> seen(static_cast<size_t>(vocab), false);
    for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
        const int id = it.value().get<int>();
        if (id < 0 || id >= vocab) fail(KTQ_ERR_FORMAT, path + ": token id " + std::to_string(id) + " out of range");
        tokens[static_cast<size_t>(id)] = it.key();
        seen[static_cast<size_t>(id)] = true;
    }
    if (tok.contains("added_tokens"))
        for (const auto &a : tok["added_tokens"]) {
            const int id = a.value("id", -1);
            if (id < 0 || id >= vocab) continue;
            tokens[static_cast<size_t>(id)] = a.value("content", "");
            seen[static_cast<size_t>(id)] = true;
            types[static_cast<size_t>(id)] = a.value("special", false) ? 3 : 4;  // control / user-defined
        }
    for (int i = 0; i < vocab; ++i)
        if (!seen[static_cast<size_t>(i)]) {
            tokens[static_cast<size_t>(i)] = "[PAD" + std::to_string(i) + "]";
            types[static_cast<size_t>(i)] = 5;  // unused
        }
    std::vector<std::string> merges;
    for (const auto &mg : m["merges"])
        merges.push_back(mg.is_array() ? mg[0].get<std::string>() + " " + mg[1].get<std::string>() : mg.get<std::string>());
    kv.add_string("tokenizer.ggml.model", "gpt2");
    kv.add_string("tokenizer.ggml.pre", pre);
    kv.add_string_array("tokenizer.ggml.tokens", tokens);
    kv.add_i32_array("tokenizer.ggml.token_type", types);
    kv.add_string_array("tokenizer.ggml.merges", merges);
    const auto &c = model.config().text();
    auto id_of = [&](const char *key) -> int { return c.contains(key) && c[key].is_number_integer() ? c[key].get<int>() : -1; };
    // The BOS llama.cpp adds is bos_token_id: the one Hugging Face's template adds, whatever config.json says
    // (a config without bos_token_id would leave llama.cpp to its default id).
    const auto &prefix = encoder->prefix_ids(), &suffix = encoder->suffix_ids();
    if (prefix.size() > 1 || suffix.size() > 1)
        fail(KTQ_ERR_UNSUPPORTED, path + ": the post-processor's template adds " + std::to_string(prefix.size()) +
                                      " token(s) before and " + std::to_string(suffix.size()) +
                                      " after the text; llama.cpp adds at most one BOS and one EOS");
    const int bos = !prefix.empty() ? prefix.front() : id_of("bos_token_id");
    const int eos = id_of("eos_token_id") >= 0 ? id_of("eos_token_id") : !suffix.empty() ? suffix.back() : -1;
    const int pad = id_of("pad_token_id");
    if (bos >= 0) kv.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(bos));
    if (eos >= 0) kv.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos));
    if (pad >= 0) kv.add_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(pad));
    // llama.cpp adds BOS/EOS when these say so; Hugging Face adds what the post-processor's template adds.
    // (A bos_token_id in config.json alone does not mean it is added: Qwen has one and never adds it.)
    kv.add_bool("tokenizer.ggml.add_bos_token", !prefix.empty());
    if (!suffix.empty()) kv.add_bool("tokenizer.ggml.add_eos_token", true);
}

}  // namespace ktq::gguf_tokenizer
