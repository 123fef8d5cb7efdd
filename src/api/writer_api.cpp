// C API: writers, engines, progress and cancellation.
#include <algorithm>
#include <cstring>

#include "api/handles.h"
#include "writers/hf_checkpoint_writer.h"
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

ktq_quantize_options resolve_options(const ktq_quantize_options *opts) {
    ktq_quantize_options o;
    ktq_quantize_options_init(&o, KTQ_QUANTIZE_OPTIONS_VERSION);
    if (opts) {
        check_version(opts->version, KTQ_QUANTIZE_OPTIONS_VERSION, "ktq_quantize_options");
        o = *opts;
    }
    return o;
}

uint64_t input_bytes_of_layer(const ktq::Model &model, const ktq::Writer &writer, int layer) {
    uint64_t total = 0;
    for (const ktq::OutputTensor *t : writer.tensors_of_layer(layer)) total += model.stored_bytes(t->source);
    return total;
}

void run_layer(const ktq_model *model, int layer, const ktq_quantize_options &opts, ktq_writer *writer,
               ProgressReporter &progress) {
    if (writer->finished) fail(KTQ_ERR_STATE, writer->out_dir + ": writer already finished");
    if (writer->model != model) fail(KTQ_ERR_INVALID_ARGUMENT, "the writer was opened for another model");
    if (writer->impl->is_layer_done(layer))
        fail(KTQ_ERR_STATE, "layer " + std::to_string(layer) + " was already written");
    auto engine = ktq::make_engine(opts.engine, writer->format);
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
    default: return "unknown";
    }
}

ktq_status ktq_writer_options_init(ktq_writer_options *opts, unsigned version) {
    ktq_status st = ktq::init_versioned(opts, version, KTQ_WRITER_OPTIONS_VERSION);
    if (st != KTQ_OK) return st;
    opts->copy_aux_files = 1;
    return KTQ_OK;
}

ktq_status ktq_quantize_options_init(ktq_quantize_options *opts, unsigned version) {
    ktq_status st = ktq::init_versioned(opts, version, KTQ_QUANTIZE_OPTIONS_VERSION);
    if (st != KTQ_OK) return st;
    opts->engine = KTQ_ENGINE_DEFAULT;
    return KTQ_OK;
}

ktq_status ktq_writer_open(ktq_writer **out, const ktq_model *model, const char *out_dir, ktq_format format,
                           const ktq_writer_options *opts, ktq_error **err) {
    if (out) *out = nullptr;
    return guarded(err, [&] {
        require(out != nullptr && model != nullptr && out_dir != nullptr, "out, model or out_dir is NULL");
        ktq_writer_options o;
        ktq_writer_options_init(&o, KTQ_WRITER_OPTIONS_VERSION);
        if (opts) {
            check_version(opts->version, KTQ_WRITER_OPTIONS_VERSION, "ktq_writer_options");
            o = *opts;
        }
        if (format != KTQ_FORMAT_HF_BF16)
            fail(KTQ_ERR_UNSUPPORTED, "output format " + std::to_string(static_cast<int>(format)) + " is not supported");
        auto w = std::make_unique<ktq_writer>();
        w->model = model;
        w->format = format;
        w->out_dir = out_dir;
        w->impl = std::make_unique<ktq::HfCheckpointWriter>(*model->impl, out_dir, o);
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
        if (format != KTQ_FORMAT_HF_BF16)
            fail(KTQ_ERR_UNSUPPORTED, "output format " + std::to_string(static_cast<int>(format)) + " is not supported");
        uint64_t max_shard = ktq::default_max_shard_bytes();
        if (opts) {
            check_version(opts->version, KTQ_WRITER_OPTIONS_VERSION, "ktq_writer_options");
            if (opts->max_shard_bytes) max_shard = opts->max_shard_bytes;
        }
        const ktq::Model &m = *model->impl;
        const auto tensors = ktq::plan_bf16_checkpoint(m);
        std::vector<const ktq::OutputTensor *> ptrs;
        uint64_t bytes = 0, largest_input = 0;
        for (const auto &t : tensors) {
            ptrs.push_back(&t);
            bytes += t.nbytes();
            largest_input = std::max<uint64_t>(largest_input, m.checkpoint().at(t.source).entry->nbytes());
        }
        if (output_bytes) *output_bytes = bytes;
        if (output_files) *output_files = ktq::group_into_shards(ptrs, max_shard).size();
        // Streaming: the input pages of the tensor in flight, one output chunk
        // per thread (CastEngine), and the tensor table.
        const uint64_t chunk = 4u << 20;
        const uint64_t metadata = 512ull * m.checkpoint().names().size();
        if (peak_memory)
            *peak_memory = largest_input + static_cast<uint64_t>(ktq::resolve_threads(threads)) * 2 * chunk + metadata;
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
