// ktq tokenize MODEL FILE [--ids-out PATH]: token ids of a text file with the
// model's tokenizer.json (what calibration and eval-ppl feed the forward).
#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

#include "cli/commands.h"
#include "ktq/ktq.h"

namespace ktq_cli {

namespace {

struct TokenizeArgs {
    std::string model, text, ids_out;
    bool print = false;
};

int run(const TokenizeArgs &a) {
    std::ifstream in(a.text, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "ktq: error: %s: cannot open text file\n", a.text.c_str());
        return 1;
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ktq_tokenizer *tok = nullptr;
    ktq_error *err = nullptr;
    int st = ktq_tokenizer_open(&tok, a.model.c_str(), &err);
    if (st != KTQ_OK) return report_error(st, err);
    size_t count = 0;
    st = ktq_tokenizer_encode(nullptr, 0, &count, tok, text.data(), text.size(), &err);
    std::vector<int32_t> ids(count);
    if (st == KTQ_ERR_BUFFER_TOO_SMALL) {
        ktq_error_free(err);
        err = nullptr;
        st = ktq_tokenizer_encode(ids.data(), ids.size(), &count, tok, text.data(), text.size(), &err);
    }
    ktq_tokenizer_free(tok);
    if (st != KTQ_OK) {
        std::fprintf(stderr, "ktq: error: %s: %s\n", a.text.c_str(), ktq_error_message(err));
        ktq_error_free(err);
        return 1;
    }
    if (!a.ids_out.empty()) {
        std::ofstream out(a.ids_out, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char *>(ids.data()), static_cast<std::streamsize>(ids.size() * sizeof(int32_t)));
        if (!out.flush()) {
            std::fprintf(stderr, "ktq: error: %s: cannot write\n", a.ids_out.c_str());
            return 1;
        }
    }
    if (a.print) {
        for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
        std::printf("\n");
    }
    std::fprintf(a.print ? stderr : stdout, "%zu tokens from %zu bytes of %s\n", ids.size(), text.size(), a.text.c_str());
    return 0;
}

}  // namespace

Command add_tokenize_command(CLI::App &app) {
    auto *cmd = app.add_subcommand("tokenize", "Token ids of a text file, with a model's tokenizer.json");
    auto a = std::make_shared<TokenizeArgs>();
    cmd->add_option("model", a->model, "Model folder or tokenizer.json")->required();
    cmd->add_option("text", a->text, "UTF-8 text file")->required()->check(CLI::ExistingFile);
    cmd->add_option("--ids-out", a->ids_out, "Write the ids as little-endian int32 to this file");
    cmd->add_flag("--print", a->print, "Print the ids on stdout");
    return {cmd, [a] { return run(*a); }};
}

}  // namespace ktq_cli
