// ktq convert MODEL OUT --to bf16|kt|compressed-tensors [--quant-method int4|int8]
//     [--scheme W4A16|W8A16 --group-size N --ignore RE --target RE --device cpu|cuda] ...
// ktq convert-cpu-weights / convert-gpu-weights: the same conversions under
// kt-kernel's convert_cpu_weights.py / convert_gpu_weights.py flags, so its
// scripts switch by one command name.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "ktq/ktq.h"

namespace ktq_cli {

namespace {

struct Options {
    std::string model, out, to = "bf16";
    std::string quant_method = "int4";
    int numa_parts = 2;
    bool loose = false;
    bool no_layer_sync = false;
    bool no_sync = false;
    std::string input_type;  // drop-in: checked against the model
    int threads = 0;
    uint64_t max_shard_bytes = 0;
    uint64_t max_gpu_memory = 0;
    uint64_t max_cpu_memory = 0;
    std::vector<int> devices;
    bool overwrite = false;
    bool resume = false;
    bool allow_non_finite = false;
    int resume_layer = 0;
    bool no_aux = false;
    bool quiet = false;
    // compressed-tensors
    std::string scheme = "W4A16";
    int group_size = 128;
    bool asymmetric = false;
    bool symmetric = false;  // --engine awq defaults to asymmetric; this keeps it symmetric
    std::vector<std::string> ignore, targets;
    bool no_default_ignore = false;
    bool ignore_dense_layers = false;  // add DeepSeek's first dense layers to an explicit --ignore list
    std::string dtype;  // "" = the model's
    std::string device = "cpu";
    std::string rounding = "fp32";
    std::string observer = "minmax";
    // calibration engines
    std::string engine = "rtn";
    std::string dataset, text_field = "text";
    int num_samples = 512, max_seq_len = 2048, calibration_batch = 8, block_size = 128;
    uint64_t seed = 42;
    double dampening_frac = 0.01;
    std::string actorder = "static";
    std::string moe_hessian = "blend";
    double moe_all_tokens_weight = 0.2;
    int awq_grid = 20;
    std::string awq_scaling = "duo";
    bool awq_clip = false;
    // gguf
    std::string gguf_type = "Q8_0";
    std::string gguf_mix;  // llama-quantize's file type names (Q4_K_M ...) or ktq's MOE_*
    std::string tokenizer_pre;  // llama.cpp's tokenizer.ggml.pre name; "" = detect
    std::string imatrix;        // llama-imatrix's file (GGUF or legacy .dat); "" = none
    std::string routing_stats;  // routing_stats.json of ktq's calibration; "" = from the imatrix
    bool source_sha256 = false; // record the source files' SHA-256 in the GGUF file
    std::string expert_layout;  // "" = by --target
    std::vector<std::string> tensor_types;  // REGEX=TYPE
};

// The ggml type named `name` ("Q4_K", ...), or -1.
int ggml_type_named(const std::string &name) {
    for (int t = 0; t < 32; ++t)  // ktq_ggml_type's range
        if (ktq_ggml_block_size(static_cast<ktq_ggml_type>(t)) && name == ktq_ggml_type_name(static_cast<ktq_ggml_type>(t)))
            return t;
    return -1;
}

// "W4A16" -> 4; the scheme names compressed-tensors' presets use.
int scheme_bits(const std::string &scheme) { return scheme == "W8A16" ? 8 : 4; }

std::string join_lines(const std::vector<std::string> &v) {
    std::string out;
    for (const auto &s : v) out += s + "\n";
    return out;
}

ktq_format format_of(const Options &o) {
    if (o.to == "bf16") return KTQ_FORMAT_HF_BF16;
    if (o.to == "compressed-tensors") return KTQ_FORMAT_COMPRESSED_TENSORS;
    if (o.to == "gguf") return KTQ_FORMAT_GGUF;
    if (o.quant_method == "awq") return KTQ_FORMAT_KT_AWQ;
    return o.quant_method == "int8" ? KTQ_FORMAT_KT_AMXINT8 : KTQ_FORMAT_KT_AMXINT4;
}

// True when MODEL/config.json says AutoAWQ (quantization_config.quant_method "awq").
bool is_awq_checkpoint(const std::string &dir) {
    std::ifstream in(dir + "/config.json");
    const nlohmann::json cfg = nlohmann::json::parse(in, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object()) return false;
    for (const nlohmann::json *scope : {&cfg, cfg.contains("text_config") ? &cfg["text_config"] : nullptr})
        if (scope && scope->is_object() && scope->contains("quantization_config") &&
            (*scope)["quantization_config"].value("quant_method", "") == "awq")
            return true;
    return false;
}

// kt-kernel's --input-type names what the checkpoint holds; a mismatch is
// almost always the wrong folder, so it stops the run.
// A CUDA device libktq can use (built with CUDA, one visible).
bool ktq_cuda_usable() {
    ktq_system_info info;
    ktq_system_info_init(&info, KTQ_SYSTEM_INFO_VERSION);
    if (ktq_system_get_info(&info, nullptr) != KTQ_OK) return false;
    return info.cuda_built && info.cuda_devices > 0;
}

bool input_type_matches(const std::string &input_type, ktq_dtype stored) {
    if (input_type.empty()) return true;
    if (input_type == "fp8") return stored == KTQ_DTYPE_F8_E4M3 || stored == KTQ_DTYPE_F8_E5M2;
    if (input_type == "fp16") return stored == KTQ_DTYPE_F16;
    if (input_type == "bf16") return stored == KTQ_DTYPE_BF16;
    return false;
}

int run(const Options &o) {
    if (o.device == "cuda" && !ktq_cuda_usable()) {  // before anything is written
        std::fprintf(stderr, "ktq: error: --device cuda: this libktq has no CUDA (-DKTQ_CUDA=ON) or no CUDA device is "
                             "visible; use --device cpu\n");
        return 2;
    }
    if (o.observer != "minmax" && (format_of(o) != KTQ_FORMAT_COMPRESSED_TENSORS || o.engine == "awq")) {
        std::fprintf(stderr, "ktq: error: --observer %s is for --to compressed-tensors with --engine rtn or gptq\n",
                     o.observer.c_str());
        return 2;
    }
    ktq_error *err = nullptr;
    ktq_model *model = nullptr;
    int st = open_model(&model, o.model, o.threads);
    if (st != KTQ_OK) return 1;
    const ktq_format format = format_of(o);
    ktq_model_info info;
    ktq_model_info_init(&info, KTQ_MODEL_INFO_VERSION);
    if (ktq_model_get_info(&info, model, nullptr) == KTQ_OK) {
        if (o.input_type == "awq" ? !is_awq_checkpoint(o.model) : !input_type_matches(o.input_type, info.source_dtype)) {
            if (o.input_type == "awq")
                std::fprintf(stderr, "ktq: error: %s: --input-type awq, but config.json's quantization_config is not "
                                     "AutoAWQ's (quant_method \"awq\")\n", o.model.c_str());
            else
                std::fprintf(stderr, "ktq: error: %s: --input-type %s, but its expert weights are %s\n", o.model.c_str(),
                             o.input_type.c_str(), ktq_dtype_name(info.source_dtype));
            ktq_model_free(model);
            return 1;
        }
        if ((format == KTQ_FORMAT_KT_AMXINT4 || format == KTQ_FORMAT_KT_AMXINT8) &&
            (info.source_dtype == KTQ_DTYPE_F8_E4M3 || info.source_dtype == KTQ_DTYPE_F8_E5M2) && !o.quiet)
            std::fprintf(stderr,
                         "ktq: warning: converting FP8 weights straight to %s adds a second rounding on top of FP8's "
                         "and can cost noticeable accuracy; prefer the original BF16 checkpoint when there is one\n",
                         o.quant_method == "int8" ? "INT8" : "INT4");
    }

    ktq_writer_options wopts;
    ktq_writer_options_init(&wopts, KTQ_WRITER_OPTIONS_VERSION);
    wopts.max_shard_bytes = o.max_shard_bytes;
    wopts.overwrite = o.overwrite;
    wopts.copy_aux_files = !o.no_aux;
    wopts.resume = o.resume || o.resume_layer > 0;
    wopts.resume_layer = o.resume_layer;
    wopts.keep_partial = 1;  // an interrupted or failed run can be continued with --resume
    wopts.numa_parts = o.numa_parts;
    wopts.loose_files = o.loose;
    wopts.no_layer_sync = o.no_layer_sync;
    wopts.no_sync = o.no_sync;
    wopts.weight_bits = scheme_bits(o.scheme);
    wopts.group_size = o.group_size;
    // AWQ's usual scheme has zero points (llm-compressor's W4A16_ASYM, AutoAWQ's GEMM checkpoints).
    wopts.asymmetric = o.asymmetric || o.scheme == "W4A16_ASYM" || (o.engine == "awq" && !o.symmetric);
    if (o.symmetric && (o.asymmetric || o.scheme == "W4A16_ASYM")) {
        std::fprintf(stderr, "ktq: error: --symmetric contradicts --asymmetric / W4A16_ASYM\n");
        ktq_model_free(model);
        return 2;
    }
    const std::string targets = format == KTQ_FORMAT_GGUF ? std::string() : join_lines(o.targets);
    if (!targets.empty()) wopts.targets = targets.c_str();
    std::vector<std::string> ignore_list = o.ignore;
    if (o.ignore_dense_layers)
        for (int l = 0; l < info.first_dense_layers; ++l)
            ignore_list.push_back("re:model\\.layers\\." + std::to_string(l) + "\\.mlp\\..*$");
    const std::string ignore = join_lines(ignore_list);
    if (!o.ignore.empty() || o.no_default_ignore) wopts.ignore = ignore.c_str();
    if (o.dtype == "bfloat16") wopts.scale_dtype = KTQ_DTYPE_BF16;
    if (o.dtype == "float16") wopts.scale_dtype = KTQ_DTYPE_F16;
    if (o.dtype == "float32") wopts.scale_dtype = KTQ_DTYPE_F32;
    wopts.ct_rounding = o.rounding == "dtype" ? KTQ_CT_ROUND_DTYPE : KTQ_CT_ROUND_FP32;
    wopts.ct_observer = o.observer == "mse" ? KTQ_CT_OBSERVER_MSE : KTQ_CT_OBSERVER_MINMAX;
    std::string gguf_mix;  // outlives wopts' use
    if (format == KTQ_FORMAT_GGUF) {
        const std::string target = o.targets.empty() ? "llama.cpp" : o.targets[0];
        if (target != "llama.cpp" && target != "candle") {
            std::fprintf(stderr, "ktq: error: --target for gguf is llama.cpp or candle, not %s\n", target.c_str());
            ktq_model_free(model);
            return 2;
        }
        // --type names a ggml type (every weight in it, as llama-quantize --pure) or, for names that
        // are not types (Q4_K_M ...), a mixture; --mix always names a mixture.
        const int t = ggml_type_named(o.gguf_type);
        if (t >= 0) wopts.gguf_type = t;
        gguf_mix = !o.gguf_mix.empty() ? o.gguf_mix : t < 0 ? o.gguf_type : "";
        if (!gguf_mix.empty()) wopts.gguf_mix = gguf_mix.c_str();
        if (!o.tokenizer_pre.empty()) wopts.gguf_tokenizer_pre = o.tokenizer_pre.c_str();
        if (!o.imatrix.empty()) wopts.gguf_imatrix = o.imatrix.c_str();
        if (!o.routing_stats.empty()) wopts.gguf_routing_stats = o.routing_stats.c_str();
        wopts.gguf_source_sha256 = o.source_sha256;
        const std::string layout = o.expert_layout.empty() ? (target == "candle" ? "split" : "stacked")
                                                           : o.expert_layout;
        wopts.gguf_split_experts = layout == "split";
    }
    const std::string tensor_types = join_lines(o.tensor_types);
    if (format == KTQ_FORMAT_GGUF && !o.tensor_types.empty()) {
        wopts.gguf_tensor_types = tensor_types.c_str();
    }
    ktq_calibration *calibration = nullptr;
    const bool calibrated = o.engine == "gptq" || o.engine == "awq";
    const char *engine_label = o.engine == "awq" ? "AWQ" : "GPTQ";
    if (calibrated) {
        const bool writes = format == KTQ_FORMAT_COMPRESSED_TENSORS || (o.engine == "awq" && format == KTQ_FORMAT_GGUF);
        if (!writes || o.dataset.empty()) {
            std::fprintf(stderr, "ktq: error: --engine %s writes --to compressed-tensors%s and needs --dataset FILE\n",
                         o.engine.c_str(), o.engine == "awq" ? " or gguf" : "");
            ktq_model_free(model);
            return 2;
        }
        if (format == KTQ_FORMAT_GGUF && (o.awq_clip || !o.imatrix.empty())) {
            // The clipping search works on compressed-tensors groups; an imatrix holds the activations before
            // AWQ's scales are folded in, so it no longer describes the inputs the weights read.
            std::fprintf(stderr, "ktq: error: --engine awq --to gguf takes neither %s\n",
                         o.awq_clip ? "--awq-clip (built for compressed-tensors groups)"
                                    : "--imatrix (its statistics predate AWQ's scaling)");
            ktq_model_free(model);
            return 2;
        }
        ktq_tokenizer *tok = nullptr;
        st = ktq_tokenizer_open(&tok, o.model.c_str(), &err);
        if (st == KTQ_OK) {
            ktq_calibration_options copts;
            ktq_calibration_options_init(&copts, KTQ_CALIBRATION_OPTIONS_VERSION);
            copts.num_samples = o.num_samples;
            copts.max_sequence_length = o.max_seq_len;
            copts.seed = o.seed;
            copts.text_field = o.text_field.c_str();
            st = ktq_calibration_open(&calibration, o.dataset.c_str(), tok, &copts, &err);
            ktq_tokenizer_free(tok);
        }
        if (st != KTQ_OK) {
            ktq_model_free(model);
            return report_error(st, err);
        }
        size_t samples = 0;
        uint64_t tokens = 0;
        ktq_calibration_info(&samples, &tokens, calibration, nullptr);
        if (!o.quiet)
            std::fprintf(stderr, "ktq: %s calibration: %zu sample(s), %llu tokens from %s%s\n", engine_label, samples,
                         static_cast<unsigned long long>(tokens), o.dataset.c_str(),
                         samples < static_cast<size_t>(o.num_samples) ? " (fewer than --num-calibration-samples: all used)"
                                                                      : "");
    }

    ktq_writer *writer = nullptr;
    st = ktq_writer_open(&writer, model, o.out.c_str(), format, &wopts, &err);
    if (st != KTQ_OK) {
        ktq_calibration_free(calibration);
        ktq_model_free(model);
        return report_error(st, err);
    }

    install_interrupt_handler();
    ProgressBar bar(o.quiet);
    ktq_quantize_options qopts;
    ktq_quantize_options_init(&qopts, KTQ_QUANTIZE_OPTIONS_VERSION);
    if (calibration) {
        qopts.engine = o.engine == "awq" ? KTQ_ENGINE_AWQ : KTQ_ENGINE_GPTQ;
        qopts.calibration = calibration;
        qopts.awq_grid = o.awq_grid;
        qopts.awq_duo_scaling = o.awq_scaling == "duo";
        qopts.awq_clip = o.awq_clip;
        qopts.dampening_frac = o.dampening_frac;
        qopts.gptq_block_size = o.block_size;
        qopts.act_order = o.actorder == "static" ? KTQ_ACT_ORDER_STATIC : KTQ_ACT_ORDER_NONE;
        qopts.calibration_batch = o.calibration_batch;
        qopts.moe_hessian = o.moe_hessian == "all" ? KTQ_MOE_HESSIAN_ALL : KTQ_MOE_HESSIAN_BLEND;
        qopts.moe_all_tokens_weight = o.moe_all_tokens_weight;
    }
    qopts.threads = o.threads;
    qopts.allow_non_finite = o.allow_non_finite;
    qopts.device = o.device == "cuda" ? KTQ_DEVICE_CUDA : KTQ_DEVICE_CPU;
    qopts.max_device_memory = o.max_gpu_memory;
    qopts.max_host_memory = o.max_cpu_memory;
    qopts.devices = o.devices.empty() ? nullptr : o.devices.data();
    qopts.device_count = o.devices.size();
    qopts.progress = &ProgressBar::callback;
    qopts.payload = &bar;
    const auto start = std::chrono::steady_clock::now();
    st = ktq_write(model, &qopts, writer, &err);
    bar.done();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uint64_t bytes = 0;
    size_t files = 0;
    ktq_writer_plan(&bytes, &files, writer, nullptr);
    ktq_writer_free(writer);  // removes partial output on failure
    ktq_model_free(model);
    ktq_calibration_free(calibration);
    if (st != KTQ_OK) {
        const char *hint = "ktq: partial output kept in %s: run the same command with --resume to continue "
                           "(finished layers are not redone), or delete it\n";
        if (st == KTQ_ERR_CANCELLED) {
            ktq_error_free(err);
            std::fprintf(stderr, "ktq: interrupted\n");
            std::fprintf(stderr, hint, o.out.c_str());
            return 130;
        }
        report_error(st, err);
        std::fprintf(stderr, hint, o.out.c_str());
        return 1;
    }
    if (!o.quiet)
        std::fprintf(stderr, "ktq: wrote %s (%s): %zu %s file(s), %s in %.2f s\n", o.out.c_str(),
                     ktq_format_name(format), files,
                     format == KTQ_FORMAT_GGUF ? "GGUF" : o.loose ? ".kt" : "safetensors", human_bytes(bytes).c_str(),
                     secs);
    return 0;
}

void add_calibration_options(CLI::App *cmd, Options &o) {
    cmd->add_option("--dataset", o.dataset,
                    "gptq, awq: calibration text (plain text, cut into --max-sequence-length windows; or JSONL with a "
                    "text field)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--num-calibration-samples", o.num_samples, "gptq, awq: samples drawn from the dataset")
        ->check(CLI::Range(1, 1 << 24))
        ->capture_default_str();
    cmd->add_option("--max-sequence-length", o.max_seq_len, "gptq, awq: tokens per sample")
        ->check(CLI::Range(2, 1 << 20))
        ->capture_default_str();
    cmd->add_option("--seed", o.seed, "gptq, awq: seed of the sample draw")->capture_default_str();
    cmd->add_option("--text-field", o.text_field, "gptq, awq: JSONL field holding the text")->capture_default_str();
    cmd->add_option("--dampening-frac", o.dampening_frac,
                    "gptq: dampening, fraction of the mean Hessian diagonal (llm-compressor 0.01; kt-kernel's "
                    "convert_gpu_weights.py 0.1)")
        ->check(CLI::Range(0.0, 10.0))
        ->capture_default_str();
    cmd->add_option("--block-size", o.block_size, "gptq: columns per lazy-update block")
        ->check(CLI::Range(1, 1 << 16))
        ->capture_default_str();
    cmd->add_option("--actorder", o.actorder, "gptq: column order, static (by Hessian diagonal) or none")
        ->check(CLI::IsMember({"static", "none"}))
        ->capture_default_str();
    cmd->add_option("--moe-hessian", o.moe_hessian,
                    "gptq and awq, routed experts (GPTQ's Hessians, AWQ's up -> down search): blend = the expert's "
                    "routed tokens + --moe-all-tokens-weight x all tokens (default; lower perplexity); all = every "
                    "token alike (llm-compressor's moe_calibrate_all_experts)")
        ->check(CLI::IsMember({"blend", "all"}))
        ->capture_default_str();
    cmd->add_option("--moe-all-tokens-weight", o.moe_all_tokens_weight, "gptq and awq, blend: weight of the all-token part")
        ->check(CLI::Range(0.0, 1000.0))
        ->capture_default_str();
    cmd->add_option("--awq-grid", o.awq_grid,
                    "awq: candidates per mapping, llm-compressor's grid (duo: s = 1, then N - 1 exponents from 0 to "
                    "1; act: N exponents from 0 to 1)")
        ->check(CLI::Range(3, 1000))
        ->capture_default_str();
    cmd->add_option("--awq-scaling", o.awq_scaling,
                    "awq: duo = scales from activation and weight magnitudes (llm-compressor's default); act = "
                    "from activations only (the AWQ paper's)")
        ->check(CLI::IsMember({"duo", "act"}))
        ->capture_default_str();
    cmd->add_flag("--awq-clip", o.awq_clip,
                  "awq: add AutoAWQ's clipping search (per group, the weight range shrunk where it lowers the "
                  "layer's output error; q/k are never clipped); llm-compressor's AWQ has none");
    cmd->add_option("--calibration-batch", o.calibration_batch, "gptq, awq: samples per forward call")
        ->check(CLI::Range(1, 1 << 16))
        ->capture_default_str();
}

void add_compressed_tensors_options(CLI::App *cmd, Options &o) {
    cmd->add_option("--scheme,--quant-type", o.scheme,
                    "compressed-tensors: W4A16 (int4), W8A16 (int8) or W4A16_ASYM (int4 with zero points)")
        ->check(CLI::IsMember({"W4A16", "W8A16", "W4A16_ASYM"}))
        ->capture_default_str();
    cmd->add_option("--group-size", o.group_size,
                    "compressed-tensors: weights per scale along the input features; -1 = per output channel")
        ->check(CLI::Range(-1, 1 << 20) & !CLI::IsMember({0}))
        ->capture_default_str();
    cmd->add_flag("--asymmetric", o.asymmetric, "compressed-tensors: zero points (asymmetric quantization)");
    cmd->add_flag("--symmetric", o.symmetric, "compressed-tensors: no zero points (the default except with --engine awq)");
    cmd->add_option("--ignore", o.ignore,
                    "compressed-tensors: keep these modules in high precision (regex matched at the start of the "
                    "module name, or re:REGEX, or an exact name; repeatable). Replaces the default list: lm_head, "
                    "routers, attention, shared experts, DeepSeek's first dense layers")
        ->take_all();
    cmd->add_flag("--no-default-ignore", o.no_default_ignore,
                  "compressed-tensors: quantize every target, lm_head and attention included (unless --ignore)");
    cmd->add_option("--target", o.targets,
                    "compressed-tensors: modules to quantize (same syntax as --ignore; repeatable; default Linear). "
                    "gguf: the reader the file is for, llama.cpp (default) or candle")
        ->take_all();
    cmd->add_option("--dtype,--torch-dtype", o.dtype,
                    "compressed-tensors: dtype of scales and kept tensors (default: the model's)")
        ->check(CLI::IsMember({"bfloat16", "float16", "float32"}));
    cmd->add_option("--rounding", o.rounding,
                    "compressed-tensors: fp32 = the bytes llm-compressor writes when it runs on a GPU (its Triton "
                    "kernel); dtype = when it runs on a CPU (eager torch rounds x/scale to BF16 first)")
        ->check(CLI::IsMember({"fp32", "dtype"}))
        ->capture_default_str();
    cmd->add_option("--observer", o.observer,
                    "compressed-tensors, --engine rtn or gptq: how group scales are chosen. minmax = from the "
                    "group's range (llm-compressor's default, same bytes); mse = the range shrunk by up to 19 % "
                    "that gives the smallest |error|^2.4 (llm-compressor's \"mse\" observer; slower, usually more "
                    "accurate, most of all under GPTQ)")
        ->check(CLI::IsMember({"minmax", "mse"}))
        ->capture_default_str();
    cmd->add_option("--device", o.device, "Where the quantizer computes: cpu or cuda (compressed-tensors)")
        ->check(CLI::IsMember({"cpu", "cuda"}))
        ->capture_default_str();
    cmd->add_option("--engine", o.engine,
                    "compressed-tensors: rtn (round to nearest), gptq or awq (both calibrated with ktq's forward "
                    "pass on --dataset; awq defaults to zero points, W4A16 asymmetric); gguf: awq searches the "
                    "scales with the output's block types (without it: plain quantization)")
        ->check(CLI::IsMember({"rtn", "gptq", "awq"}))
        ->capture_default_str();
    add_calibration_options(cmd, o);
}

}  // namespace

Command add_convert_command(CLI::App &app) {
    auto o = std::make_shared<Options>();
    CLI::App *cmd = app.add_subcommand("convert", "Convert a checkpoint into another format");
    cmd->add_option("model", o->model, "Input model folder (or one .safetensors file)")->required();
    cmd->add_option("out", o->out, "Output folder (created; must be empty unless --overwrite)")->required();
    cmd->add_option("--to,--format", o->to,
                    "Target format: bf16 (dequantized Hugging Face checkpoint), kt (kt-kernel AMX experts) or "
                    "compressed-tensors (W4A16/W8A16 for vLLM, SGLang, transformers) or gguf (OUT is then "
                    "the .gguf file)")
        ->check(CLI::IsMember({"bf16", "kt", "compressed-tensors", "gguf"}))
        ->capture_default_str();
    cmd->add_option("--quant-method", o->quant_method,
                    "kt: int4 or int8 (kt-kernel AMXINT4 / AMXINT8), or awq (an AutoAWQ checkpoint's experts re-packed "
                    "for kt-kernel's AWQ kernels)")
        ->check(CLI::IsMember({"int4", "int8", "awq"}))
        ->capture_default_str();
    cmd->add_option("--threadpool-count,--numa-parts", o->numa_parts,
                    "kt: NUMA parts each expert is split into (kt-kernel's --threadpool-count)")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    cmd->add_flag("--no-merge-safetensor,--loose", o->loose,
                  "kt: write _layer_L/_numa_P/*.kt files instead of merged safetensors");
    add_compressed_tensors_options(cmd, *o);
    cmd->add_option("--type", o->gguf_type,
                    "gguf: ggml type of every weight (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, "
                    "Q4_K, Q5_K, Q6_K; as llama-quantize --pure), or a mixture named like llama-quantize's "
                    "(Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M) or ktq's MoE mixtures "
                    "(MOE_Q2_K ... MOE_Q6_K: routed experts in that type, other weights Q8_0); norms and routers "
                    "stay F32")
        ->capture_default_str();
    cmd->add_option("--mix", o->gguf_mix,
                    "gguf: llama-quantize's mixture of that name, also for names that are types (Q4_0, Q8_0, "
                    "Q2_K, Q6_K ...: the output gets Q6_K, Mixtral's attention Q8_0, as llama-quantize without "
                    "--pure)");
    cmd->add_option("--tensor-type", o->tensor_types,
                    "gguf: REGEX=TYPE, the type of the weights whose GGUF name the regex matches "
                    "(e.g. ffn_down_exps=Q6_K); repeatable, the first match wins")
        ->take_all();
    cmd->add_option("--imatrix", o->imatrix,
                    "gguf: quantize with this importance matrix (llama-imatrix's GGUF file or legacy .dat), "
                    "the same bytes as llama-quantize --imatrix")
        ->check(CLI::ExistingFile);
    cmd->add_option("--routing-stats", o->routing_stats,
                    "gguf: record per-expert routed token counts from this routing_stats.json (written by "
                    "--engine gptq) as ktq.routing.blk.N.expert_tokens, for placing hot experts on a GPU; "
                    "default: from a GGUF --imatrix's counts")
        ->check(CLI::ExistingFile);
    cmd->add_flag("--source-sha256", o->source_sha256,
                  "gguf: record the SHA-256 of the source's config, tokenizer and weight files (the hub's LFS ids) "
                  "as ktq.source.sha256; reads the checkpoint once more");
    cmd->add_option("--tokenizer-pre", o->tokenizer_pre,
                    "gguf: llama.cpp's pre-tokenizer name to write (tokenizer.ggml.pre) instead of the one derived "
                    "from tokenizer.json; for tokenizers ktq does not recognise, written unchecked");
    cmd->add_option("--expert-layout", o->expert_layout,
                    "gguf: routed experts stacked (blk.N.ffn_gate_exps, llama.cpp) or split per expert "
                    "(blk.N.ffn_gate.E, Candle's quantized_llama); default from --target")
        ->check(CLI::IsMember({"stacked", "split"}));

    cmd->add_option("--threads", o->threads, "Worker threads (default: one per core, from hwloc)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--devices", o->devices,
                    "--device cuda: CUDA devices to use, e.g. 0,1 (GPTQ calibrates on the first and spreads each "
                    "layer's solve over all; default 0)")
        ->delimiter(',')
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--max-gpu-memory", o->max_gpu_memory,
                    "--device cuda: GPU memory the engine may hold, e.g. 40GiB (default: 80 % of what is free)")
        ->transform(CLI::AsSizeValue(true));
    cmd->add_option("--max-cpu-memory", o->max_cpu_memory,
                    "gptq, awq: host memory the engine may hold for calibration, e.g. 64GiB (default: no limit); past "
                    "half of it the activations go to a temporary file in TMPDIR, and a layer that needs more on its "
                    "own stops the run before it is written")
        ->transform(CLI::AsSizeValue(true));
    cmd->add_option("--max-shard-size", o->max_shard_bytes,
                    "Largest output shard, e.g. 5GB, 500MB, 4GiB (default 5GB)")
        ->transform(CLI::AsSizeValue(true));
    cmd->add_flag("--overwrite", o->overwrite, "Write into a folder that already holds files (starts over)");
    cmd->add_flag("--resume", o->resume,
                  "Continue an interrupted conversion in OUT: layers already on disk are not redone");
    cmd->add_option("--resume-layer", o->resume_layer,
                    "With --resume: treat layers below N as done (as kt-kernel's converter)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--allow-non-finite", o->allow_non_finite, "Convert tensors holding NaN/Inf instead of stopping");
    cmd->add_flag("--no-layer-sync", o->no_layer_sync,
                  "Do not fsync each layer before journaling it (faster; --resume stays exact after a killed "
                  "process, but not after a power loss)");
    cmd->add_flag("--no-sync", o->no_sync, kNoSyncHelp)->excludes("--no-layer-sync");
    cmd->add_flag("--no-aux", o->no_aux, "Do not copy tokenizer / generation / template files");
    cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
    return {cmd, [o] { return run(*o); }};
}

Command add_convert_cpu_weights_command(CLI::App &app) {
    auto o = std::make_shared<Options>();
    o->to = "kt";
    auto ignored_int = std::make_shared<int>(0);
    auto ignored_flag = std::make_shared<bool>(false);
    CLI::App *cmd = app.add_subcommand(
        "convert-cpu-weights",
        "Drop-in for kt-kernel's convert_cpu_weights.py (same flags): experts -> AMX INT4/INT8 layout");
    cmd->add_option("-i,--input-path", o->model, "Input model folder")->required();
    cmd->add_option("--input-type", o->input_type, "What the checkpoint holds: fp8, fp16, bf16 or awq (checked)")
        ->check(CLI::IsMember({"fp8", "fp16", "bf16", "awq"}))
        ->required();
    cmd->add_option("-o,--output", o->out, "Output folder")->required();
    cmd->add_option("--quant-method", o->quant_method, "int4, int8 or awq (moe_int4, moe_int8 are not supported yet)")
        ->check(CLI::IsMember({"int4", "int8", "awq", "moe_int4", "moe_int8"}))
        ->capture_default_str();
    cmd->add_option("--cpuinfer-threads", o->threads, "Worker threads (default: one per core)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--threadpool-count", o->numa_parts, "NUMA parts each expert is split into")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    cmd->add_flag("--no-merge-safetensor", o->loose, "Keep _layer_L/_numa_P/*.kt files instead of safetensors");
    cmd->add_option("--resume-layer", o->resume_layer, "Continue an interrupted run in OUTPUT from layer N")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--gpu", *ignored_flag, "Accepted for compatibility; ktq needs no GPU (FP8 is dequantized on CPU)")
        ->expected(0, 1);
    cmd->add_option("--fp8-expert-batch", *ignored_int, "Accepted for compatibility; ignored");
    cmd->add_flag("--no-sync", o->no_sync, kNoSyncHelp);
    cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
    // The ignored options' storage lives as long as the command (CLI11 writes
    // into it while parsing).
    return {cmd, [o, ignored_int, ignored_flag] {
                if (o->quant_method != "int4" && o->quant_method != "int8" && o->quant_method != "awq") {
                    std::fprintf(stderr, "ktq: error: --quant-method %s is not supported yet (int4, int8, awq are)\n",
                                 o->quant_method.c_str());
                    return 2;
                }
                return run(*o);
            }};
}

Command add_convert_gpu_weights_command(CLI::App &app) {
    auto o = std::make_shared<Options>();
    o->to = "compressed-tensors";
    o->scheme = "W8A16";  // the script's default
    o->dtype = "bfloat16";
    auto method = std::make_shared<std::string>("GPTQ");
    auto force_cpu = std::make_shared<bool>(false);
    auto ignored = std::make_shared<std::string>();
    auto ignored_flag = std::make_shared<bool>(false);
    CLI::App *cmd = app.add_subcommand(
        "convert-gpu-weights",
        "Drop-in for kt-kernel's convert_gpu_weights.py (same flags): compressed-tensors W4A16/W8A16 (RTN)");
    cmd->add_option("--model_id", o->model, "Input model folder")->required();
    cmd->add_option("--output_dir", o->out, "Output folder")->required();
    cmd->add_option("--quant_method", *method, "GPTQ (calibrated on --dataset, a local text or JSONL file) or RTN")
        ->check(CLI::IsMember({"GPTQ", "RTN"}))
        ->capture_default_str();
    cmd->add_option("--quant_type", o->scheme, "W4A16 or W8A16")
        ->check(CLI::IsMember({"W4A16", "W8A16"}))
        ->capture_default_str();
    CLI::Option *ignore_opt =
        cmd->add_option("--ignore_patterns", o->ignore,
                        "Modules kept in high precision (replaces the defaults; the first_k_dense_replace layers are "
                        "still added, as the script does)")
            ->expected(0, -1);
    cmd->add_option("--torch_dtype", o->dtype, "dtype of scales and kept tensors")
        ->check(CLI::IsMember({"bfloat16", "float16", "float32"}))
        ->capture_default_str();
    cmd->add_flag("--force_cpu", *force_cpu,
                  "Compute on the CPU and give the bytes the script writes there (without it, GPTQ runs on the GPU "
                  "when libktq has CUDA and a device is visible, as the script does)");
    o->dampening_frac = 0.1;  // the script's default
    cmd->add_option("--dataset", o->dataset, "GPTQ: calibration data, a local plain-text or JSONL file");
    cmd->add_option("--num_calibration_samples", o->num_samples, "GPTQ: samples")->capture_default_str();
    cmd->add_option("--max_sequence_length", o->max_seq_len, "GPTQ: tokens per sample")->capture_default_str();
    cmd->add_option("--dampening_frac", o->dampening_frac, "GPTQ: dampening")->capture_default_str();
    cmd->add_option("--random_seed", o->seed, "GPTQ: seed of the sample draw")->capture_default_str();
    cmd->add_option("--max_gpu_memory", o->max_gpu_memory, "GPTQ on the GPU: memory ktq may hold there, e.g. 40GiB")
        ->transform(CLI::AsSizeValue(true));
    cmd->add_option("--max_cpu_memory", o->max_cpu_memory,
                    "GPTQ: host memory ktq may hold for calibration, e.g. 64GiB (activations go to a temporary file "
                    "in TMPDIR past half of it)")
        ->transform(CLI::AsSizeValue(true));
    cmd->add_option("--dataset_split", *ignored, "Accepted for compatibility; not used");
    cmd->add_flag("--trust_remote_code", *ignored_flag, "Accepted for compatibility (ktq runs no model code)");
    cmd->add_option("--threads", o->threads, "Worker threads (default: one per core)")->check(CLI::NonNegativeNumber);
    cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
    return {cmd, [o, method, force_cpu, ignore_opt, ignored, ignored_flag] {
                if (*method == "GPTQ") {
                    if (o->dataset.empty() || !std::ifstream(o->dataset)) {
                        std::fprintf(stderr, "ktq: error: --quant_method GPTQ needs --dataset naming a local text or "
                                             "JSONL file (ktq does not download hub datasets)%s%s\n",
                                     o->dataset.empty() ? "" : ": cannot open ", o->dataset.c_str());
                        return 2;
                    }
                    o->engine = "gptq";
                    // The script calibrates on the GPU unless forced onto the CPU.
                    if (!*force_cpu && ktq_cuda_usable()) o->device = "cuda";
                }
                // The script runs llm-compressor on the GPU unless forced onto
                // the CPU, which changes the codes it writes (see --rounding).
                o->rounding = *force_cpu ? "dtype" : "fp32";
                if (ignore_opt->count() > 0) {
                    o->no_default_ignore = true;
                    o->ignore_dense_layers = true;
                }
                return run(*o);
            }};
}

}  // namespace ktq_cli
