// ktq inspect MODEL [--json] [--plan] [--tensors]
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "ktq/ktq.h"

namespace ktq_cli {

namespace {

struct Options {
    std::string model;
    bool json = false;
    bool plan = false;
    bool tensors = false;
    int threads = 0;
};

bool contains(const std::string &s, const char *part) { return s.find(part) != std::string::npos; }

// Which part of the model a tensor belongs to, for the size breakdown.
const char *part_of(const std::string &name) {
    if (contains(name, "_scale_inv")) return "fp8 scales";
    if (contains(name, "shared_expert")) return "shared experts";
    if (contains(name, ".experts.")) return "routed experts";
    if (contains(name, "embed_tokens") || contains(name, "lm_head") || contains(name, "wte")) return "embeddings + head";
    if (contains(name, "norm")) return "norms";
    if (contains(name, ".mlp.gate.") || contains(name, "block_sparse_moe.gate.") || contains(name, "router"))
        return "routers";
    if (contains(name, "attn") || contains(name, "attention")) return "attention";
    if (contains(name, ".mlp.") || contains(name, "feed_forward")) return "dense mlp";
    return "other";
}

const char *storage_name(ktq_expert_storage s) {
    switch (s) {
    case KTQ_EXPERTS_PER_EXPERT: return "per-expert";
    case KTQ_EXPERTS_FUSED: return "fused";
    default: return "none";
    }
}

int run(const Options &o) {
    ktq_error *err = nullptr;
    ktq_model *model = nullptr;
    int st = open_model(&model, o.model, o.threads);
    if (st != KTQ_OK) return 1;

    ktq_model_info info;
    ktq_model_info_init(&info, KTQ_MODEL_INFO_VERSION);
    st = ktq_model_get_info(&info, model, &err);
    if (st != KTQ_OK) {
        ktq_model_free(model);
        return report_error(st, err);
    }

    std::map<std::string, uint64_t> parts;
    std::map<std::string, uint64_t> dtypes;
    nlohmann::ordered_json tensor_list = nlohmann::ordered_json::array();
    const size_t count = ktq_model_tensor_count(model);
    for (size_t i = 0; i < count; ++i) {
        ktq_tensor_info t;
        ktq_tensor_info_init(&t, KTQ_TENSOR_INFO_VERSION);
        if (ktq_model_tensor_info(&t, model, i, nullptr) != KTQ_OK) continue;
        parts[part_of(t.name)] += t.nbytes;
        dtypes[ktq_dtype_name(t.dtype)] += t.nbytes;
        if (o.tensors) {
            std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
            tensor_list.push_back({{"name", t.name}, {"dtype", ktq_dtype_name(t.dtype)}, {"shape", shape},
                                   {"bytes", t.nbytes}, {"file", t.file}, {"layer", t.layer}});
        }
    }

    nlohmann::ordered_json plan = nlohmann::ordered_json::object();
    if (o.plan) {
        // Every format ktq writes, with its default options; a format that
        // does not apply to this model says why instead of failing the command.
        struct Target {
            const char *label;
            ktq_format format;
            int weight_bits;
        };
        const Target targets[] = {{"bf16", KTQ_FORMAT_HF_BF16, 0},
                                  {"kt-amxint4", KTQ_FORMAT_KT_AMXINT4, 0},
                                  {"kt-amxint8", KTQ_FORMAT_KT_AMXINT8, 0},
                                  {"compressed-tensors W4A16", KTQ_FORMAT_COMPRESSED_TENSORS, 4},
                                  {"compressed-tensors W8A16", KTQ_FORMAT_COMPRESSED_TENSORS, 8}};
        for (const Target &t : targets) {
            ktq_writer_options wopts;
            ktq_writer_options_init(&wopts, KTQ_WRITER_OPTIONS_VERSION);
            if (t.weight_bits) wopts.weight_bits = t.weight_bits;
            uint64_t bytes = 0, peak = 0;
            size_t files = 0;
            st = ktq_estimate_output(&bytes, &files, &peak, model, t.format, &wopts, o.threads, &err);
            if (st == KTQ_ERR_UNSUPPORTED || st == KTQ_ERR_FORMAT) {
                plan[t.label] = {{"unavailable", ktq_error_message(err)}};
                ktq_error_free(err);
                err = nullptr;
                continue;
            }
            if (st != KTQ_OK) {
                ktq_model_free(model);
                return report_error(st, err);
            }
            plan[t.label] = {{"output_bytes", bytes}, {"output_files", files}, {"peak_memory_bytes", peak}};
        }
    }

    if (o.json) {
        nlohmann::ordered_json j;
        j["path"] = info.path;
        j["architecture"] = info.architecture;
        j["model_type"] = info.model_type;
        j["family"] = ktq_arch_family_name(info.family);
        j["num_layers"] = info.num_layers;
        j["hidden_size"] = info.hidden_size;
        j["intermediate_size"] = info.intermediate_size;
        j["moe_intermediate_size"] = info.moe_intermediate_size;
        j["num_experts"] = info.num_experts;
        j["experts_per_token"] = info.experts_per_token;
        j["first_dense_layers"] = info.first_dense_layers;
        j["num_moe_layers"] = info.num_moe_layers;
        j["num_shared_experts"] = info.num_shared_experts;
        j["vocab_size"] = info.vocab_size;
        j["expert_storage"] = storage_name(info.expert_storage);
        j["source_dtype"] = ktq_dtype_name(info.source_dtype);
        j["fp8_block_size"] = info.fp8_block_rows ? nlohmann::ordered_json{info.fp8_block_rows, info.fp8_block_cols}
                                                  : nlohmann::ordered_json(nullptr);
        j["num_tensors"] = info.num_tensors;
        j["num_files"] = info.num_files;
        j["total_bytes"] = info.total_bytes;
        j["bytes_by_part"] = parts;
        j["bytes_by_dtype"] = dtypes;
        j["notice"] = info.notice;
        if (o.plan) j["plan"] = plan;
        if (o.tensors) j["tensors"] = tensor_list;
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("model          %s\n", info.path);
        std::printf("architecture   %s (model_type %s, family %s)\n", info.architecture, info.model_type,
                    ktq_arch_family_name(info.family));
        if (info.notice[0]) std::printf("notice         %s\n", info.notice);
        std::printf("layers         %d (%d leading dense, %d MoE)\n", info.num_layers, info.first_dense_layers,
                    info.num_moe_layers);
        std::printf("hidden size    %d, vocab %d\n", info.hidden_size, info.vocab_size);
        if (info.num_experts)
            std::printf("experts        %d routed (top-%d), %d shared, moe_intermediate %d, stored %s\n",
                        info.num_experts, info.experts_per_token, info.num_shared_experts,
                        info.moe_intermediate_size, storage_name(info.expert_storage));
        else
            std::printf("experts        none (dense, intermediate %d)\n", info.intermediate_size);
        std::printf("source dtype   %s", ktq_dtype_name(info.source_dtype));
        if (info.fp8_block_rows) std::printf(" (block scales %dx%d)", info.fp8_block_rows, info.fp8_block_cols);
        std::printf("\ntensors        %zu in %zu file(s), %s\n", info.num_tensors, info.num_files,
                    human_bytes(info.total_bytes).c_str());
        std::printf("bytes by part\n");
        for (const auto &kv : parts) std::printf("  %-18s %12s\n", kv.first.c_str(), human_bytes(kv.second).c_str());
        if (o.plan) {
            std::printf("plan\n");
            for (auto it = plan.begin(); it != plan.end(); ++it) {
                if (it.value().contains("unavailable")) {
                    std::printf("  %-25s not for this model: %s\n", it.key().c_str(),
                                it.value()["unavailable"].get<std::string>().c_str());
                    continue;
                }
                std::printf("  %-25s output %s in %zu file(s), peak memory about %s\n", it.key().c_str(),
                            human_bytes(it.value()["output_bytes"].get<uint64_t>()).c_str(),
                            it.value()["output_files"].get<size_t>(),
                            human_bytes(it.value()["peak_memory_bytes"].get<uint64_t>()).c_str());
            }
        }
        if (o.tensors)
            for (const auto &t : tensor_list)
                std::printf("  %-60s %-8s %-16s %s\n", t["name"].get<std::string>().c_str(),
                            t["dtype"].get<std::string>().c_str(), t["shape"].dump().c_str(),
                            t["file"].get<std::string>().c_str());
    }
    ktq_model_free(model);
    return 0;
}

}  // namespace

Command add_inspect_command(CLI::App &app) {
    auto o = std::make_shared<Options>();
    CLI::App *cmd = app.add_subcommand("inspect", "Describe a checkpoint: architecture, layers, experts, dtypes, sizes");
    cmd->add_option("model", o->model, "Model folder (or one .safetensors file)")->required();
    cmd->add_flag("--json", o->json, "Print JSON");
    cmd->add_flag("--plan", o->plan, "Estimate output size and peak memory for each target format");
    cmd->add_flag("--tensors", o->tensors, "List every tensor");
    cmd->add_option("--threads", o->threads, "Worker threads for the estimate (default: one per core)");
    return {cmd, [o] { return run(*o); }};
}

}  // namespace ktq_cli
