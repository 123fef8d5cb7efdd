// ktq eval-ppl MODEL --text FILE: perplexity with the native forward pass,
// protocol of ../shared/README.md by default (256-token windows, first
// 131072 tokens).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli/commands.h"
#include "ktq/ktq.h"

namespace ktq_cli {

namespace {

struct EvalArgs {
    std::string model, text;
    int window = 256;
    uint64_t max_tokens = 131072;
    int threads = 0;
    std::string device = "cpu";
    std::string kt_experts, gguf;
    bool json = false, quiet = false;
    std::string nll_out;
};

int on_layer(const ktq_progress *p, void *payload) {
    if (!*static_cast<bool *>(payload))
        std::fprintf(stderr, "\reval-ppl: layer %d/%d", p->layer, p->layers_total), std::fflush(stderr);
    return 0;
}

int run(const EvalArgs &a) {
    std::ifstream in(a.text, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "ktq: error: %s: cannot open text file\n", a.text.c_str());
        return 1;
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ktq_model *model = nullptr;
    if (open_model(&model, a.model, a.threads, a.kt_experts, a.gguf) != KTQ_OK) return 1;
    ktq_tokenizer *tok = nullptr;
    ktq_error *err = nullptr;
    int st = ktq_tokenizer_open(&tok, a.model.c_str(), &err);
    if (st != KTQ_OK) {
        ktq_model_free(model);
        return report_error(st, err);
    }
    ktq_eval_options opts;
    ktq_eval_options_init(&opts, KTQ_EVAL_OPTIONS_VERSION);
    opts.window = a.window;
    opts.max_tokens = a.max_tokens;
    opts.device = a.device == "cuda" ? KTQ_DEVICE_CUDA : KTQ_DEVICE_CPU;
    bool quiet = a.quiet;
    opts.progress = on_layer;
    opts.payload = &quiet;
    std::vector<double> nll;
    if (!a.nll_out.empty()) {
        nll.resize(a.max_tokens ? a.max_tokens : text.size() + 1);  // >= positions scored (< 1 token per byte + 1)
        opts.token_nll = nll.data();
        opts.token_nll_capacity = nll.size();
    }
    ktq_eval_result r{};
    const auto t0 = std::chrono::steady_clock::now();
    st = ktq_eval_perplexity(&r, model, tok, text.data(), text.size(), &opts, &err);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!quiet) std::fprintf(stderr, "\n");
    ktq_tokenizer_free(tok);
    ktq_model_free(model);
    if (st != KTQ_OK) return report_error(st, err);
    if (!a.nll_out.empty()) {
        std::ofstream out(a.nll_out, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char *>(nll.data()), static_cast<std::streamsize>(r.tokens_scored * sizeof(double)));
        if (!out.flush()) {
            std::fprintf(stderr, "ktq: error: %s: cannot write\n", a.nll_out.c_str());
            return 1;
        }
    }
    if (a.json) {
        nlohmann::ordered_json j;
        j["model"] = a.model;
        j["text"] = a.text;
        j["perplexity"] = r.perplexity;
        j["mean_nll"] = r.mean_nll;
        j["tokens_scored"] = r.tokens_scored;
        j["windows"] = r.windows;
        j["window"] = a.window;
        j["seconds"] = secs;
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("%s: ppl %.4f over %llu predicted tokens (%llu windows of %d) in %.1f s\n", a.model.c_str(),
                    r.perplexity, static_cast<unsigned long long>(r.tokens_scored),
                    static_cast<unsigned long long>(r.windows), a.window, secs);
    }
    return 0;
}

}  // namespace

Command add_eval_ppl_command(CLI::App &app) {
    auto *cmd = app.add_subcommand("eval-ppl", "Perplexity of a checkpoint on a text file (native forward pass)");
    auto a = std::make_shared<EvalArgs>();
    cmd->add_option("model", a->model, "Hugging Face checkpoint folder (with tokenizer.json)")->required();
    cmd->add_option("--text", a->text, "UTF-8 text to score")->required()->check(CLI::ExistingFile);
    cmd->add_option("--window", a->window, "Tokens per window")->capture_default_str()->check(CLI::Range(2, 1 << 20));
    cmd->add_option("--max-tokens", a->max_tokens, "Score the first N tokens (0 = all)")->capture_default_str();
    cmd->add_option("--threads", a->threads, "Worker threads (0 = one per core)")->capture_default_str();
    cmd->add_option("--kt-experts", a->kt_experts,
                    "A kt-kernel AMX output (INT4/INT8) of MODEL: its routed experts, dequantized, replace the "
                    "checkpoint's (scores what kt-kernel computes with)")
        ->check(CLI::ExistingDirectory);
    cmd->add_option("--gguf", a->gguf,
                    "A GGUF file of MODEL (ktq's or llama.cpp's): every weight it holds, dequantized, replaces the "
                    "checkpoint's (scores what llama.cpp or Candle compute with; MODEL gives config and tokenizer)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--device", a->device, "Where the forward runs: cpu, or cuda (whole layers on CUDA device 0 in float32 while they fit, else "
                    "their products)")
        ->check(CLI::IsMember({"cpu", "cuda"}))
        ->capture_default_str();
    cmd->add_flag("--json", a->json, "Print the result as JSON");
    cmd->add_option("--nll-out", a->nll_out, "Write every scored position's loss (float64, window by window)");
    cmd->add_flag("-q,--quiet", a->quiet, "No progress output");
    return {cmd, [a] { return run(*a); }};
}

}  // namespace ktq_cli
