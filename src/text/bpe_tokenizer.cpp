// Byte-level BPE tokenizer. The steps follow Hugging Face tokenizers'
// pipeline for tokenizer.json files: added tokens are split off first (on
// the raw text), the rest is normalized, pre-tokenized by regex, each piece
// is mapped byte -> printable character (GPT-2's table) and merged by
// rank, then the post-processor adds its special tokens.
#include "text/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/error.h"

namespace ktq {

namespace {

using nlohmann::json;

// The pattern tokenizers' ByteLevel pre-tokenizer uses when use_regex is true.
constexpr const char *kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

void append_utf8(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

size_t utf8_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if ((lead >> 5) == 0x6) return 2;
    if ((lead >> 4) == 0xE) return 3;
    if ((lead >> 3) == 0x1E) return 4;
    return 1;
}

uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

// A compiled pre-tokenizer regex; split() cuts a piece into the matches and
// the gaps between them (tokenizers' "Isolated" behaviour).
class PreTokenizerRegex {
public:
    PreTokenizerRegex(const std::string &pattern, const std::string &where) {
        int code = 0;
        PCRE2_SIZE offset = 0;
        re_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                            &code, &offset, nullptr);
        if (!re_) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            fail(KTQ_ERR_FORMAT, where + ": pre-tokenizer regex does not compile at offset " + std::to_string(offset) +
                                     ": " + reinterpret_cast<const char *>(msg));
        }
        jit_ = pcre2_jit_compile(re_, PCRE2_JIT_COMPLETE) == 0;
    }
    ~PreTokenizerRegex() { pcre2_code_free(re_); }
    PreTokenizerRegex(const PreTokenizerRegex &) = delete;
    PreTokenizerRegex &operator=(const PreTokenizerRegex &) = delete;

    // `text` must be valid UTF-8 (checked once per encode() by the caller).
    void split(std::string_view text, std::vector<std::string_view> &out) const {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re_, nullptr);
        if (!md) throw std::bad_alloc();
        size_t pos = 0, gap_begin = 0;
        const auto *subject = reinterpret_cast<PCRE2_SPTR>(text.data());
        while (pos <= text.size()) {
            const int rc = jit_ ? pcre2_jit_match(re_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr)
                                : pcre2_match(re_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                pcre2_match_data_free(md);
                fail(KTQ_ERR_INTERNAL, "pre-tokenizer regex failed with PCRE2 code " + std::to_string(rc));
            }
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            const size_t b = ov[0], e = ov[1];
            if (e == b) {  // empty match: no piece, step over one character
                if (b >= text.size()) break;
                pos = b + utf8_length(static_cast<unsigned char>(text[b]));
                continue;
            }
            if (b > gap_begin) out.push_back(text.substr(gap_begin, b - gap_begin));
            out.push_back(text.substr(b, e - b));
            pos = gap_begin = e;
        }
        if (gap_begin < text.size()) out.push_back(text.substr(gap_begin));
        pcre2_match_data_free(md);
    }

private:
    pcre2_code *re_ = nullptr;
    bool jit_ = false;
};

BpeTokenizer::~BpeTokenizer() = default;

std::unique_ptr<BpeTokenizer> BpeTokenizer::load(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(KTQ_ERR_NOT_FOUND, path + ": cannot open tokenizer file");
    json doc;
    try {
        doc = json::parse(in);
    } catch (const json::exception &e) {
        fail(KTQ_ERR_FORMAT, path + ": not valid JSON: " + e.what());
    }
    std::unique_ptr<BpeTokenizer> t(new BpeTokenizer());
    t->path_ = path;
    auto where = [&](const std::string &field) { return path + ": " + field; };
    try {
        const json &model = doc.at("model");
        const std::string type = model.value("type", "BPE");
        if (type != "BPE")
            fail(KTQ_ERR_UNSUPPORTED, where("model.type") + " is \"" + type + "\"; only byte-level BPE is supported");
        if (model.value("byte_fallback", false))
            fail(KTQ_ERR_UNSUPPORTED, where("model.byte_fallback") + " is true (SentencePiece-style BPE) - not supported");
        // Llama 3 sets it: a pre-tokenized word that is itself a token is not merged up from bytes.
        t->ignore_merges_ = model.value("ignore_merges", false);
        // Vocabulary.
        int32_t max_id = -1;
        for (auto it = model.at("vocab").begin(); it != model.at("vocab").end(); ++it) {
            const int32_t id = it.value().get<int32_t>();
            if (id < 0) fail(KTQ_ERR_FORMAT, where("model.vocab") + ": negative id for \"" + it.key() + "\"");
            t->vocab_[it.key()] = id;
            max_id = std::max(max_id, id);
        }
        for (const auto &a : doc.value("added_tokens", json::array())) max_id = std::max(max_id, a.at("id").get<int32_t>());
        t->id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
        for (const auto &[tok, id] : t->vocab_) t->id_to_token_[static_cast<size_t>(id)] = tok;
        // Merges: "a b" strings (older files) or ["a", "b"] pairs.
        int32_t rank = 0;
        for (const auto &m : model.at("merges")) {
            std::string a, b;
            if (m.is_string()) {
                const std::string s = m.get<std::string>();
                const size_t sp = s.find(' ');
                if (sp == std::string::npos) fail(KTQ_ERR_FORMAT, where("model.merges") + ": \"" + s + "\" has no space");
                a = s.substr(0, sp);
                b = s.substr(sp + 1);
            } else {
                a = m.at(0).get<std::string>();
                b = m.at(1).get<std::string>();
            }
            auto ia = t->vocab_.find(a), ib = t->vocab_.find(b), iab = t->vocab_.find(a + b);
            if (ia == t->vocab_.end() || ib == t->vocab_.end() || iab == t->vocab_.end())
                fail(KTQ_ERR_FORMAT, where("model.merges") + ": merge " + std::to_string(rank) + " (\"" + a + "\" \"" + b +
                                         "\") names a token that is not in the vocabulary");
            t->merges_.emplace(pair_key(ia->second, ib->second), std::make_pair(rank, iab->second));
            ++rank;
        }
        // Added tokens, matched on the raw text, longest first.
        for (const auto &a : doc.value("added_tokens", json::array())) {
            const std::string content = a.at("content").get<std::string>();
            const int32_t id = a.at("id").get<int32_t>();
            if (content.empty()) continue;
            t->added_.push_back({content, id});
            t->id_to_token_[static_cast<size_t>(id)] = content;
        }
        std::stable_sort(t->added_.begin(), t->added_.end(),
                         [](const AddedToken &x, const AddedToken &y) { return x.content.size() > y.content.size(); });
        // Normalizer: none, or NFC (identity on ASCII; other input is refused
        // rather than tokenized differently from the reference).
        const json &norm = doc.contains("normalizer") ? doc["normalizer"] : json();
        if (!norm.is_null()) {
            const std::string nt = norm.value("type", "");
            if (nt == "NFC") t->nfc_ascii_only_ = true;
            else fail(KTQ_ERR_UNSUPPORTED, where("normalizer") + " of type \"" + nt + "\" is not supported");
        }
        // Pre-tokenizer: ByteLevel, or Sequence[Split(Regex, Isolated)..., ByteLevel].
        const json &pre = doc.at("pre_tokenizer");
        std::vector<json> steps;
        if (pre.value("type", "") == "Sequence") steps.assign(pre.at("pretokenizers").begin(), pre.at("pretokenizers").end());
        else steps.push_back(pre);
        bool byte_level = false;
        for (const json &s : steps) {
            const std::string st = s.value("type", "");
            if (st == "ByteLevel") {
                byte_level = true;
                t->add_prefix_space_ = s.value("add_prefix_space", false);
                if (s.value("use_regex", true))
                    t->splits_.push_back(std::make_unique<PreTokenizerRegex>(kGpt2Pattern, where("pre_tokenizer")));
            } else if (st == "Split") {
                if (s.value("behavior", "") != "Isolated" || s.value("invert", false) || !s.at("pattern").contains("Regex"))
                    fail(KTQ_ERR_UNSUPPORTED, where("pre_tokenizer") + ": only Split with a Regex pattern, behavior "
                                                                      "Isolated and invert false is supported");
                t->splits_.push_back(std::make_unique<PreTokenizerRegex>(
                    s.at("pattern").at("Regex").get<std::string>(), where("pre_tokenizer")));
            } else {
                fail(KTQ_ERR_UNSUPPORTED, where("pre_tokenizer") + " step \"" + st + "\" is not supported");
            }
        }
        if (!byte_level) fail(KTQ_ERR_UNSUPPORTED, where("pre_tokenizer") + " has no ByteLevel step");
        // Post-processor: ByteLevel (ids unchanged), TemplateProcessing, or a Sequence of them.
        std::vector<json> posts;
        const json &post = doc.contains("post_processor") ? doc["post_processor"] : json();
        if (!post.is_null()) {
            if (post.value("type", "") == "Sequence") posts.assign(post.at("processors").begin(), post.at("processors").end());
            else posts.push_back(post);
        }
        for (const json &p : posts) {
            const std::string pt = p.value("type", "");
            if (pt == "ByteLevel") continue;
            if (pt != "TemplateProcessing")
                fail(KTQ_ERR_UNSUPPORTED, where("post_processor") + " of type \"" + pt + "\" is not supported");
            bool seen_a = false;
            for (const json &piece : p.at("single")) {
                if (piece.contains("Sequence")) {
                    seen_a = true;
                    continue;
                }
                const std::string name = piece.at("SpecialToken").at("id").get<std::string>();
                for (const json &id : p.at("special_tokens").at(name).at("ids"))
                    (seen_a ? t->suffix_ids_ : t->prefix_ids_).push_back(id.get<int32_t>());
            }
        }
    } catch (const json::exception &e) {
        fail(KTQ_ERR_FORMAT, path + ": unexpected tokenizer.json structure: " + e.what());
    }
    // GPT-2's byte table: printable Latin-1 bytes stand for themselves, the
    // others are shifted to code points 256 and up, in byte order.
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        append_utf8(t->byte_to_unicode_[b], printable ? static_cast<uint32_t>(b) : next++);
    }
    return t;
}

std::vector<int32_t> BpeTokenizer::merge_word(const std::string &mapped) const {
    if (ignore_merges_) {
        auto whole = vocab_.find(mapped);
        if (whole != vocab_.end()) return {whole->second};
    }
    std::vector<int32_t> syms;
    for (size_t i = 0; i < mapped.size();) {
        const size_t n = utf8_length(static_cast<unsigned char>(mapped[i]));
        auto it = vocab_.find(mapped.substr(i, n));
        if (it == vocab_.end())
            fail(KTQ_ERR_FORMAT, path_ + ": byte symbol \"" + mapped.substr(i, n) + "\" is not in the vocabulary");
        syms.push_back(it->second);
        i += n;
    }
    // Lowest rank first; the leftmost occurrence of that pair first.
    for (;;) {
        int32_t best_rank = std::numeric_limits<int32_t>::max(), best_id = -1;
        size_t best_pos = 0;
        for (size_t i = 0; i + 1 < syms.size(); ++i) {
            auto it = merges_.find(pair_key(syms[i], syms[i + 1]));
            if (it != merges_.end() && it->second.first < best_rank) {
                best_rank = it->second.first;
                best_id = it->second.second;
                best_pos = i;
            }
        }
        if (best_id < 0) break;
        syms[best_pos] = best_id;
        syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(best_pos) + 1);
    }
    return syms;
}

void BpeTokenizer::encode_word(std::string_view piece, std::vector<int32_t> &out) const {
    std::string mapped;
    mapped.reserve(piece.size() * 2);
    for (unsigned char c : piece) mapped += byte_to_unicode_[c];
    {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        auto it = cache_.find(mapped);
        if (it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    std::vector<int32_t> ids = merge_word(mapped);
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < (1u << 20)) cache_.emplace(std::move(mapped), std::move(ids));
}

void BpeTokenizer::encode_ordinary(std::string_view text, std::vector<int32_t> &out) const {
    if (text.empty()) return;
    if (nfc_ascii_only_)
        for (unsigned char c : text)
            if (c >= 0x80)
                fail(KTQ_ERR_UNSUPPORTED, path_ + ": NFC normalization of non-ASCII text is not supported");
    std::string prefixed;
    if (add_prefix_space_ && text.front() != ' ') {
        prefixed = " ";
        prefixed.append(text);
        text = prefixed;
    }
    std::vector<std::string_view> pieces{text}, next;
    for (const auto &re : splits_) {
        next.clear();
        for (std::string_view p : pieces) re->split(p, next);
        pieces.swap(next);
    }
    for (std::string_view p : pieces) encode_word(p, out);
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
    // One UTF-8 validation for the whole text; the regexes then skip theirs.
    {
        static const char kNoPattern[] = "x";
        int code = 0;
        PCRE2_SIZE off = 0;
        pcre2_code *re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kNoPattern), 1, PCRE2_UTF, &code, &off, nullptr);
        pcre2_match_data *md = pcre2_match_data_create(1, nullptr);
        const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                                   PCRE2_ANCHORED, md, nullptr);
        const PCRE2_SIZE bad = pcre2_get_startchar(md);  // where the bad character starts
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
            fail(KTQ_ERR_FORMAT, "text is not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
    }
    std::vector<int32_t> out(prefix_ids_);
    out.reserve(text.size() / 3);
    size_t seg = 0, i = 0;
    while (i < text.size()) {
        const AddedToken *hit = nullptr;
        for (const AddedToken &a : added_)
            if (text.compare(i, a.content.size(), a.content) == 0) {
                hit = &a;
                break;
            }
        if (!hit) {
            ++i;
            continue;
        }
        encode_ordinary(text.substr(seg, i - seg), out);
        out.push_back(hit->id);
        i += hit->content.size();
        seg = i;
    }
    encode_ordinary(text.substr(seg), out);
    out.insert(out.end(), suffix_ids_.begin(), suffix_ids_.end());
    return out;
}

}  // namespace ktq
