// C API: writers, engines, progress and cancellation.
#include <algorithm>
#include <cstring>

#include "api/ct_arguments.h"
#include "api/handles.h"
#include <cstddef>
#include <set>
#include <utility>

#include "writers/checkpoint_writer.h"
#include "writers/ct_plan.h"
#include "writers/gguf_plan.h"
#include "writers/output_journal.h"
#include "writers/kt_amx_plan.h"
#include "writers/kt_awq_plan.h"
#include "writers/safetensors_writer.h"

using ktq::check_version;
using ktq::fail;
using ktq::guarded;
using ktq::require;

namespace {

// Reports progress to the user's callback and turns a non-zero return into
// cancellation.
class ProgressReporter {
public:
    ProgressReporter(const ktq_quantize_options &opts, int layers_total, uint64_t bytes_total)
        : opts_(opts) {
        p_.version = KTQ_PROGRESS_VERSION;
        p_.layers_total = layers_total;
        p_.bytes_total = bytes_total;
    }
    bool tensor_done(int layer, const std::string &tensor, uint64_t bytes) {
        p_.layer = layer;
        p_.tensor = tensor.c_str();
        p_.bytes_done += bytes;
        return !opts_.progress || opts_.progress(&p_, opts_.payload) == 0;
    }

private:
    const ktq_quantize_options &opts_;
    ktq_progress p_{};
};

// Bytes of each options version: a caller built against an older header
// passes a smaller struct, which is read only as far as it goes.
size_t quantize_options_size(unsigned version) {
    return version == 1   ? offsetof(ktq_quantize_options, device)
           : version == 2 ? offsetof(ktq_quantize_options, calibration)
           : version == 3 ? offsetof(ktq_quantize_options, max_device_memory)
           : version == 4 ? offsetof(ktq_quantize_options, awq_grid)
           : version == 5 ? offsetof(ktq_quantize_options, max_host_memory)
                          : sizeof(ktq_quantize_options);
}

ktq_quantize_options resolve_options(const ktq_quantize_options *opts) {
    ktq_quantize_options o;
    ktq_quantize_options_init(&o, KTQ_QUANTIZE_OPTIONS_VERSION);
    ktq::overlay_versioned(o, opts, KTQ_QUANTIZE_OPTIONS_VERSION, "ktq_quantize_options", quantize_options_size);
    if (o.device != KTQ_DEVICE_CPU && o.device != KTQ_DEVICE_CUDA)
        fail(KTQ_ERR_INVALID_ARGUMENT, "unknown device " + std::to_string(static_cast<int>(o.device)));
    return o;
}

size_t writer_options_size(unsigned version) {
    return version == 1   ? offsetof(ktq_writer_options, numa_parts)
           : version == 2 ? offsetof(ktq_writer_options, weight_bits)
           : version == 3 ? offsetof(ktq_writer_options, gguf_mix)
           : version == 4 ? offsetof(ktq_writer_options, gguf_tokenizer_pre)
           : version == 5 ? offsetof(ktq_writer_options, no_sync)
           : version == 6 ? offsetof(ktq_writer_options, ct_observer)
                          : sizeof(ktq_writer_options);
}

void set_writer_defaults(ktq_writer_options *o) {
    o->copy_aux_files = 1;
    if (o->version >= 2) o->numa_parts = 2;
    if (o->version >= 3) {
        o->weight_bits = 4;
        o->group_size = 128;
        o->gguf_type = KTQ_GGML_Q8_0;
    }
}

ktq_writer_options resolve_writer_options(const ktq_writer_options *opts) {
    ktq_writer_options o;
    ktq_writer_options_init(&o, KTQ_WRITER_OPTIONS_VERSION);
    ktq::overlay_versioned(o, opts, KTQ_WRITER_OPTIONS_VERSION, "ktq_writer_options", writer_options_size);
    if (o.numa_parts == 0) o.numa_parts = 2;
    if (o.weight_bits == 0) o.weight_bits = 4;
    if (o.group_size == 0) o.group_size = 128;
    return o;
}

bool is_kt_format(ktq_format f) { return f == KTQ_FORMAT_KT_AMXINT4 || f == KTQ_FORMAT_KT_AMXINT8; }

// The output plan of `format`: the one place formats are told apart.
ktq::OutputPlan plan_for(const ktq::Model &m, ktq_format format, const ktq_writer_options &o) {
    if (format == KTQ_FORMAT_HF_BF16) return ktq::plan_bf16_checkpoint(m, o);
    if (format == KTQ_FORMAT_KT_AWQ) return ktq::plan_kt_awq(m, o);
    if (is_kt_format(format)) {
        ktq::KtAmxLayout layout;
        layout.method = format == KTQ_FORMAT_KT_AMXINT8 ? ktq::kt_amx::Method::Int8 : ktq::kt_amx::Method::Int4;
        layout.numa_parts = o.numa_parts;
        layout.loose = o.loose_files != 0;
        return ktq::plan_kt_amx(m, layout, o);
    }
    if (format == KTQ_FORMAT_COMPRESSED_TENSORS) {
        ktq::CtLayout layout;
        layout.scheme.bits = o.weight_bits;
        layout.scheme.group_size = o.group_size;
        layout.scheme.symmetric = o.asymmetric == 0;
        layout.scheme.dtype = o.scale_dtype != KTQ_DTYPE_UNKNOWN ? o.scale_dtype : ktq::ct_model_dtype(m);
        if (o.ct_rounding != KTQ_CT_ROUND_FP32 && o.ct_rounding != KTQ_CT_ROUND_DTYPE)
            fail(KTQ_ERR_INVALID_ARGUMENT, "unknown ct_rounding " + std::to_string(static_cast<int>(o.ct_rounding)));
        layout.scheme.dtype_rounding = o.ct_rounding == KTQ_CT_ROUND_DTYPE;
        layout.scheme.observer = ktq::ct_arguments::observer_of(o.ct_observer);
        layout.targets = o.targets ? ktq::parse_ct_patterns(o.targets) : std::vector<std::string>{"Linear"};
        layout.ignore = o.ignore ? ktq::parse_ct_patterns(o.ignore) : ktq::default_ct_ignore(m);
        return ktq::plan_compressed_tensors(m, layout, o);
    }
    if (format == KTQ_FORMAT_GGUF) {
        ktq::GgufLayout layout;
        layout.type = static_cast<ktq_ggml_type>(o.gguf_type);
        layout.split_experts = o.gguf_split_experts != 0;
        if (o.gguf_mix) layout.mix = o.gguf_mix;
        if (o.gguf_tokenizer_pre) layout.tokenizer_pre = o.gguf_tokenizer_pre;
        if (o.gguf_imatrix) layout.imatrix = o.gguf_imatrix;
        if (o.gguf_routing_stats) layout.routing_stats = o.gguf_routing_stats;
        layout.source_sha256 = o.gguf_source_sha256 != 0;
        if (o.gguf_tensor_types) {
            std::string text = o.gguf_tensor_types, line;
            for (size_t at = 0; at <= text.size(); ++at)
                if (at == text.size() || text[at] == '\n') {
                    if (!line.empty()) layout.tensor_types.push_back(line);
                    line.clear();
                } else {
                    line += text[at];
                }
        }
        return ktq::plan_gguf(m, layout, o);
    }
    fail(KTQ_ERR_UNSUPPORTED, "output format " + std::to_string(static_cast<int>(format)) + " is not supported");
}

uint64_t input_bytes_of_layer(const ktq::Model &model, const ktq::Writer &writer, int layer) {
    // Each expert matrix counts once: the kt format makes several outputs of
    // one, and fused experts share one source tensor.
    uint64_t total = 0;
    std::set<std::pair<int, int>> experts_seen;  // (expert, proj)
    for (const ktq::OutputTensor *t : writer.tensors_of_layer(layer)) {
        if (t->source.empty()) continue;  // computed by the plan (GGUF's rope_freqs)
        if (t->expert < 0)
            total += model.stored_bytes(t->source);
        else if (experts_seen.insert({t->expert, t->proj}).second)
            total += model.expert_bytes(layer, t->expert, static_cast<ktq_expert_proj>(t->proj));
    }
    return total;
}

void run_layer(const ktq_model *model, int layer, const ktq_quantize_options &opts, ktq_writer *writer,
               ProgressReporter &progress) {
    if (writer->finished) fail(KTQ_ERR_STATE, writer->out_dir + ": writer already finished");
    if (writer->model != model) fail(KTQ_ERR_INVALID_ARGUMENT, "the writer was opened for another model");
    if (writer->impl->is_layer_done(layer))
        fail(KTQ_ERR_STATE, "layer " + std::to_string(layer) + " was already written");
    // The engine lives as long as the writer: calibration engines carry
    // their activations from one layer to the next.
    if (!writer->engine || writer->engine_kind != opts.engine || writer->engine_device != opts.device) {
        // Before any calibration (every engine is made here): the AWQ engine's grid search quantizes every
        // candidate scaling with the min-max observer, and the MSE search on top would multiply that by 20.
        if (opts.engine == KTQ_ENGINE_AWQ && writer->ct_mse_observer)
            fail(KTQ_ERR_UNSUPPORTED, "the AWQ engine chooses scales with the min-max observer; the MSE observer is "
                                      "for the RTN and GPTQ engines");
        writer->engine = ktq::make_engine(opts.engine, writer->format, opts.device);
        writer->engine_kind = opts.engine;
        writer->engine_device = opts.device;
    }
    ktq::Engine *engine = writer->engine.get();
    const ktq::Model &m = *model->impl;
    // A threads option different from the model's pool gets its own pool.
    std::unique_ptr<ktq::ThreadPool> own_pool;
    ktq::ThreadPool *pool = &m.pool();
    if (opts.threads > 0 && opts.threads != pool->size()) {
        own_pool = std::make_unique<ktq::ThreadPool>(opts.threads);
        pool = own_pool.get();
    }
    engine->run_layer(m, layer, *writer->impl, *pool, opts, [&](const std::string &tensor, uint64_t bytes) {
        return progress.tensor_done(layer, tensor, bytes);
    });
    writer->impl->layer_done(layer);
}

}  // namespace

extern "C" {

const char *ktq_format_name(ktq_format format) {
    switch (format) {
    case KTQ_FORMAT_HF_BF16: return "bf16";
    case KTQ_FORMAT_KT_AMXINT4: return "kt-amxint4";
    case KTQ_FORMAT_KT_AMXINT8: return "kt-amxint8";
    case KTQ_FORMAT_COMPRESSED_TENSORS: return "compressed-tensors";
    case KTQ_FORMAT_GGUF: return "gguf";
    case KTQ_FORMAT_KT_AWQ: return "kt-awq";
    default: return "unknown";
    }
}

ktq_status ktq_writer_options_init(ktq_writer_options *opts, unsigned version) {
    ktq_status st = ktq::init_versioned_prefix(opts, version, KTQ_WRITER_OPTIONS_VERSION, writer_options_size);
    if (st != KTQ_OK) return st;
    set_writer_defaults(opts);
    return KTQ_OK;
}

ktq_status ktq_quantize_options_init(ktq_quantize_options *opts, unsigned version) {
    ktq_status st = ktq::init_versioned_prefix(opts, version, KTQ_QUANTIZE_OPTIONS_VERSION, quantize_options_size);
    if (st != KTQ_OK) return st;
    opts->engine = KTQ_ENGINE_DEFAULT;
    if (version >= 3) {
        opts->dampening_frac = 0.01;
        opts->gptq_block_size = 128;
        opts->act_order = KTQ_ACT_ORDER_STATIC;
        opts->calibration_batch = 8;
        opts->moe_hessian = KTQ_MOE_HESSIAN_BLEND;
        opts->moe_all_tokens_weight = 0.2;
    }
    if (version >= 5) {
        opts->awq_grid = 20;
        opts->awq_duo_scaling = 1;
        opts->awq_clip = 0;
    }
    return KTQ_OK;
}

ktq_status ktq_writer_open(ktq_writer **out, const ktq_model *model, const char *out_dir, ktq_format format,
                           const ktq_writer_options *opts, ktq_error **err) {
    if (out) *out = nullptr;
    return guarded(err, [&] {
        require(out != nullptr && model != nullptr && out_dir != nullptr, "out, model or out_dir is NULL");
        const ktq_writer_options o = resolve_writer_options(opts);
        auto plan = plan_for(*model->impl, format, o);
        std::string dir = out_dir;
        if (format == KTQ_FORMAT_GGUF) {
            // out_dir names the file; the conversion works beside it.
            plan.gguf_final_path = out_dir;
            dir = std::string(out_dir) + ".ktq-work";
            // An existing file is only accepted when resuming a conversion
            // that had finished (killed before its work folder was removed).
            const auto journal = ktq::load_journal(dir);
            const bool finished_here = o.resume && journal && journal->complete;
            if (ktq::file_exists(out_dir) && !o.overwrite && !finished_here)
                fail(KTQ_ERR_INVALID_ARGUMENT, std::string(out_dir) + ": already exists; allow overwriting to replace it");
        }
        auto w = std::make_unique<ktq_writer>();
        w->model = model;
        w->format = format;
        w->out_dir = out_dir;
        w->ct_mse_observer = format == KTQ_FORMAT_COMPRESSED_TENSORS && o.ct_observer == KTQ_CT_OBSERVER_MSE;
        w->impl = std::make_unique<ktq::CheckpointWriter>(*model->impl, dir, o, std::move(plan));
        *out = w.release();
    });
}

ktq_status ktq_writer_plan(uint64_t *output_bytes, size_t *output_files, const ktq_writer *writer, ktq_error **err) {
    return guarded(err, [&] {
        require(writer != nullptr, "writer is NULL");
        if (output_bytes) *output_bytes = writer->impl->output_bytes();
        if (output_files) *output_files = writer->impl->output_files();
    });
}

ktq_status ktq_estimate_output(uint64_t *output_bytes, size_t *output_files, uint64_t *peak_memory,
                               const ktq_model *model, ktq_format format, const ktq_writer_options *opts,
                               int threads, ktq_error **err) {
    return guarded(err, [&] {
        require(model != nullptr, "model is NULL");
        const ktq_writer_options o = resolve_writer_options(opts);
        const uint64_t max_shard = o.max_shard_bytes ? o.max_shard_bytes : ktq::default_max_shard_bytes();
        const ktq::Model &m = *model->impl;
        const auto plan = plan_for(m, format, o);
        std::vector<const ktq::OutputTensor *> ptrs;
        uint64_t bytes = 0, largest_input = 0, largest_expert = 0;
        for (const auto &t : plan.tensors) {
            ptrs.push_back(&t);
            bytes += t.nbytes();
            const uint64_t in = t.source.empty() ? 0 : m.checkpoint().at(t.source).entry->nbytes();
            largest_input = std::max(largest_input, in);
            if (t.expert >= 0) largest_expert = std::max(largest_expert, t.nbytes());
        }
        if (output_bytes) *output_bytes = bytes;
        if (output_files)
            *output_files = plan.loose_files ? plan.tensors.size()
                                             : plan.shards.empty() ? ktq::group_into_shards(ptrs, max_shard).size()
                                                                   : plan.shards.size();
        const uint64_t workers = static_cast<uint64_t>(ktq::resolve_threads(threads));
        const uint64_t metadata = 512ull * m.checkpoint().names().size();
        // Streaming: the input pages of the tensor in flight, per worker one
        // output chunk (CastEngine) or one BF16 expert matrix plus its packed
        // part (KtAmxEngine), and the tensor table.
        uint64_t per_worker = 2 * (4u << 20);
        if (is_kt_format(format)) {
            uint64_t largest_matrix = 0;
            for (int l = 0; l < static_cast<int>(m.arch().layers.size()); ++l)
                for (int p = 0; p < 3 && m.arch().layers[static_cast<size_t>(l)].storage != KTQ_EXPERTS_NONE; ++p) {
                    const auto v = m.expert(l, 0, static_cast<ktq_expert_proj>(p));
                    largest_matrix = std::max<uint64_t>(largest_matrix, v.rows * v.cols * 2);  // read as BF16
                }
            per_worker = std::max(per_worker, largest_matrix + largest_expert + largest_matrix / 16);
        }
        if (peak_memory) *peak_memory = largest_input + workers * per_worker + metadata;
    });
}

ktq_status ktq_writer_finish(ktq_writer *writer, ktq_error **err) {
    return guarded(err, [&] {
        require(writer != nullptr, "writer is NULL");
        if (writer->finished) fail(KTQ_ERR_STATE, writer->out_dir + ": writer already finished");
        writer->impl->finish();
        writer->finished = true;
    });
}

void ktq_writer_free(ktq_writer *writer) {
    if (!writer) return;
    if (writer->impl) writer->impl->abort();
    delete writer;
}

ktq_status ktq_quantize_layer(const ktq_model *model, int layer, const ktq_quantize_options *opts,
                              ktq_writer *writer, ktq_error **err) {
    return guarded(err, [&] {
        require(model != nullptr && writer != nullptr, "model or writer is NULL");
        ktq_quantize_options o = resolve_options(opts);
        ProgressReporter progress(o, writer->impl->num_layers(), input_bytes_of_layer(*model->impl, *writer->impl, layer));
        run_layer(model, layer, o, writer, progress);
    });
}

ktq_status ktq_write(const ktq_model *model, const ktq_quantize_options *opts, ktq_writer *writer, ktq_error **err) {
    return guarded(err, [&] {
        require(model != nullptr && writer != nullptr, "model or writer is NULL");
        ktq_quantize_options o = resolve_options(opts);
        const int layers = writer->impl->num_layers();
        uint64_t total = 0;
        for (int l = -1; l < layers; ++l)
            if (!writer->impl->is_layer_done(l)) total += input_bytes_of_layer(*model->impl, *writer->impl, l);
        ProgressReporter progress(o, layers, total);
        for (int l = 0; l < layers; ++l)
            if (!writer->impl->is_layer_done(l)) run_layer(model, l, o, writer, progress);
        if (!writer->impl->is_layer_done(KTQ_LAYER_GLOBALS)) run_layer(model, KTQ_LAYER_GLOBALS, o, writer, progress);
        writer->impl->finish();
        writer->finished = true;
    });
}

}  // extern "C"
