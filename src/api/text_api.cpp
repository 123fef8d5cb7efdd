// C API: tokenizer.
#include <sys/stat.h>

#include "api/handles.h"
#include "ktq/text.h"
#include "text/bpe_tokenizer.h"

using ktq::guarded;
using ktq::require;

namespace ktq {

std::string tokenizer_json_path(const std::string &path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return path + "/tokenizer.json";
    return path;
}

}  // namespace ktq

extern "C" {

ktq_status ktq_tokenizer_open(ktq_tokenizer **out, const char *path, ktq_error **err) {
    return guarded(err, [&] {
        require(out != nullptr, "out is NULL");
        *out = nullptr;
        require(path != nullptr, "path is NULL");
        auto t = std::make_unique<ktq_tokenizer>();
        t->impl = ktq::BpeTokenizer::load(ktq::tokenizer_json_path(path));
        *out = t.release();
    });
}

void ktq_tokenizer_free(ktq_tokenizer *tokenizer) { delete tokenizer; }

size_t ktq_tokenizer_vocab_size(const ktq_tokenizer *tokenizer) {
    return tokenizer ? static_cast<size_t>(tokenizer->impl->vocab_size()) : 0;
}

ktq_status ktq_tokenizer_encode(int32_t *ids, size_t capacity, size_t *count, const ktq_tokenizer *tokenizer,
                                const char *text, size_t text_len, ktq_error **err) {
    return guarded(err, [&] {
        require(tokenizer != nullptr, "tokenizer is NULL");
        require(count != nullptr, "count is NULL");
        require(text != nullptr || text_len == 0, "text is NULL");
        const std::vector<int32_t> out = tokenizer->impl->encode(std::string_view(text ? text : "", text_len));
        *count = out.size();
        if (out.size() > capacity)
            ktq::fail(KTQ_ERR_BUFFER_TOO_SMALL, "text has " + std::to_string(out.size()) + " tokens, buffer holds " +
                                                    std::to_string(capacity));
        require(ids != nullptr || out.empty(), "ids is NULL");
        std::copy(out.begin(), out.end(), ids);
    });
}

}  // extern "C"
