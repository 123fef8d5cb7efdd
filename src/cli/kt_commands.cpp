// ktq merge: loose kt files -> merged safetensors (kt-kernel's merge_cpu_weights.py flags)
// ktq compare: two kt outputs, part by part (kt-kernel's compare_weights.py flags)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "ktq/ktq.h"

namespace ktq_cli {

namespace {

struct MergeOptions {
    std::string input, output, original;
    bool overwrite = false, quiet = false, no_sync = false;
};

int run_merge(const MergeOptions &o) {
    ktq_error *err = nullptr;
    ktq_model *model = nullptr;
    if (!o.original.empty() && open_model(&model, o.original, 0) != KTQ_OK) return 1;
    ktq_writer_options wopts;
    ktq_writer_options_init(&wopts, KTQ_WRITER_OPTIONS_VERSION);
    wopts.overwrite = o.overwrite;
    wopts.no_sync = o.no_sync;
    const int st = ktq_kt_merge(o.output.c_str(), o.input.c_str(), model, &wopts, &err);
    ktq_model_free(model);
    if (st != KTQ_OK) return report_error(st, err);
    if (!o.quiet)
        std::fprintf(stderr, "ktq: merged %s into %s%s\n", o.input.c_str(), o.output.c_str(),
                     model || !o.original.empty() ? " (with the model's other tensors, config and tokenizer)"
                                                  : " (expert tensors only; add --original-path for the rest)");
    return 0;
}

struct CompareOptions {
    std::string a, b;
    double tolerance = 0.0;
    bool all = false;
};

struct Part {
    ktq_kt_part_info info;
    size_t index;
};

std::map<std::string, Part> parts_of(const ktq_kt_output *o) {
    std::map<std::string, Part> out;
    for (size_t i = 0; i < ktq_kt_output_part_count(o); ++i) {
        Part p;
        ktq_kt_part_info_init(&p.info, KTQ_KT_PART_INFO_VERSION);
        p.index = i;
        if (ktq_kt_output_part(&p.info, o, i, nullptr) == KTQ_OK) out[p.info.name] = p;
    }
    return out;
}

int run_compare(const CompareOptions &o) {
    ktq_error *err = nullptr;
    ktq_kt_output *a = nullptr, *b = nullptr;
    int st = ktq_kt_output_open(&a, o.a.c_str(), &err);
    if (st != KTQ_OK) return report_error(st, err);
    st = ktq_kt_output_open(&b, o.b.c_str(), &err);
    if (st != KTQ_OK) {
        ktq_kt_output_free(a);
        return report_error(st, err);
    }
    const auto pa = parts_of(a), pb = parts_of(b);
    size_t identical = 0, within = 0, differ = 0, only_a = 0, only_b = 0, shown = 0;
    double worst = 0;
    std::string worst_name;
    auto show = [&](const char *fmt, const std::string &name, double x = 0, double y = 0) {
        if (o.all || shown++ < 20) std::printf(fmt, name.c_str(), x, y);
    };
    for (const auto &kv : pa) {
        auto it = pb.find(kv.first);
        if (it == pb.end()) {
            ++only_a;
            show("only in A   %s\n", kv.first);
            continue;
        }
        const ktq_kt_part_info &ia = kv.second.info, &ib = it->second.info;
        if (ia.method != ib.method || ia.rows != ib.rows || ia.cols != ib.cols) {
            ++differ;
            show("shape/method differs  %s\n", kv.first);
            continue;
        }
        std::vector<uint8_t> qa(ia.packed_bytes), qb(ib.packed_bytes);
        std::vector<float> sa(ia.rows), sb(ib.rows);
        if (ktq_kt_output_read(qa.data(), qa.size(), sa.data(), sa.size(), a, kv.second.index, &err) != KTQ_OK ||
            ktq_kt_output_read(qb.data(), qb.size(), sb.data(), sb.size(), b, it->second.index, &err) != KTQ_OK) {
            ktq_kt_output_free(a);
            ktq_kt_output_free(b);
            return report_error(KTQ_ERR_IO, err);
        }
        if (qa == qb && std::equal(sa.begin(), sa.end(), sb.begin(), [](float x, float y) {
                return std::memcmp(&x, &y, 4) == 0;
            })) {
            ++identical;
            continue;
        }
        std::vector<float> da(ia.rows * ia.cols), db(da.size());
        ktq_kt_output_dequantize(da.data(), da.size(), a, kv.second.index, nullptr);
        ktq_kt_output_dequantize(db.data(), db.size(), b, it->second.index, nullptr);
        double max_diff = 0, sum = 0;
        for (size_t i = 0; i < da.size(); ++i) {
            const double d = std::fabs(static_cast<double>(da[i]) - db[i]);
            max_diff = std::max(max_diff, d);
            sum += d;
        }
        if (max_diff > worst) worst = max_diff, worst_name = kv.first;
        if (max_diff <= o.tolerance) {
            ++within;
            continue;
        }
        ++differ;
        show("differs     %s  max |A-B| %.6g  mean %.6g\n", kv.first, max_diff, sum / da.size());
    }
    for (const auto &kv : pb)
        if (!pa.count(kv.first)) {
            ++only_b;
            show("only in B   %s\n", kv.first);
        }
    if (!o.all && shown > 20) std::printf("... %zu more lines (--all shows every one)\n", shown - 20);
    std::printf("%zu parts: %zu identical, %zu within tolerance %g, %zu differ, %zu only in A, %zu only in B\n",
                pa.size() + only_b, identical, within, o.tolerance, differ, only_a, only_b);
    if (worst > 0) std::printf("largest difference: %.6g in %s\n", worst, worst_name.c_str());
    ktq_kt_output_free(a);
    ktq_kt_output_free(b);
    return differ || only_a || only_b ? 1 : 0;
}

}  // namespace

Command add_merge_command(CLI::App &app) {
    auto o = std::make_shared<MergeOptions>();
    CLI::App *cmd = app.add_subcommand(
        "merge", "Merge loose kt files (_layer_L/_numa_P/*.kt) into safetensors (kt-kernel's merge_cpu_weights.py)");
    cmd->add_option("-i,--input-path", o->input, "Folder holding the _layer_* folders")->required();
    cmd->add_option("-o,--output", o->output, "Output folder")->required();
    cmd->add_option("-r,--original-path", o->original,
                    "The model they were converted from: adds its other tensors, config and tokenizer");
    cmd->add_flag("--overwrite", o->overwrite, "Write into a folder that already holds files");
    cmd->add_flag("--no-sync", o->no_sync, kNoSyncHelp);
    cmd->add_flag("-q,--quiet", o->quiet, "No summary line");
    return {cmd, [o] { return run_merge(*o); }};
}

Command add_compare_command(CLI::App &app) {
    auto o = std::make_shared<CompareOptions>();
    CLI::App *cmd = app.add_subcommand(
        "compare", "Compare two kt outputs part by part, merged or loose (kt-kernel's compare_weights.py)");
    cmd->add_option("path1,--path1", o->a, "First output folder")->required();
    cmd->add_option("path2,--path2", o->b, "Second output folder")->required();
    cmd->add_option("--tolerance", o->tolerance,
                    "Largest |A-B| of dequantized weights still counted equal (default 0: bytes must match)");
    cmd->add_flag("--all", o->all, "List every differing part (default: the first 20)");
    return {cmd, [o] { return run_compare(*o); }};
}

}  // namespace ktq_cli
