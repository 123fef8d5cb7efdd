// CheckpointWriter - an output folder planned in full at open time (an
// OutputPlan: every tensor, its dtype, shape, source and layer), filled layer
// by layer by an engine, crash-safe and resumable through the journal.
//
// The plan decides the format: KTQ_FORMAT_HF_BF16 (hf_bf16_plan.cpp) or
// kt-kernel's AMX layout (kt_amx_plan.cpp), stored as safetensors shards or
// as loose files. finish() writes config.json as the plan says, copies
// tokenizer/generation/chat-template files, and makes the tensors visible
// last.
#pragma once

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ktq/writer.h"
#include "reading/model.h"
#include "writers/gguf_format.h"
#include "writers/output_journal.h"
#include "writers/safetensors_writer.h"
#include "writers/tensor_store.h"
#include "writers/writer.h"

namespace ktq {

// What a format writes. Tensors come in file order; each knows its layer.
struct OutputPlan {
    std::string description;  // format + options, part of the journal's fingerprint
    std::vector<OutputTensor> tensors;
    bool loose_files = false;   // one file per tensor (OutputTensor::file) instead of safetensors shards
    // Safetensors shards given by the plan (indices into `tensors`, each in
    // payload order); empty = cut `tensors` by max_shard_bytes.
    std::vector<std::vector<size_t>> shards;
    bool pt_metadata = true;    // {"format":"pt"} in each safetensors header
    std::string config_json;    // written as config.json ("" = none)
    std::vector<std::string> aux_files;  // copied from the model folder
    // GGUF: one file with these key-values, renamed to gguf_final_path on
    // commit; the writer's folder is then only its work folder, removed
    // when the file is complete.
    std::shared_ptr<const gguf::Metadata> gguf_metadata;
    std::string gguf_final_path;
};

class CheckpointWriter : public Writer {
public:
    CheckpointWriter(const Model &model, const std::string &out_dir, const ktq_writer_options &opts, OutputPlan plan);
    ~CheckpointWriter() override;

    const std::vector<const OutputTensor *> &tensors_of_layer(int layer) const override;
    void write(const OutputTensor &tensor, uint64_t offset, const void *data, size_t bytes) override;
    void layer_done(int layer) override;
    void amend_config(const std::function<void(nlohmann::json &)> &edit) override;
    void add_file(const std::string &name, std::string content) override;
    bool is_layer_done(int layer) const override;
    void finish() override;
    void abort() noexcept override;

    uint64_t output_bytes() const override { return output_bytes_; }
    size_t output_files() const override { return output_files_; }
    int num_layers() const override { return static_cast<int>(by_layer_.size()) - 1; }

private:
    // Finished layers are made durable by a background thread: it
    // fdatasyncs the output and only then journals them, so the next layer
    // is computed while the last one is written back (the journal still
    // never claims bytes that are not on disk).
    void sync_loop();
    void stop_syncer() noexcept;
    void rethrow_sync_error();

    const Model &model_;
    std::string out_dir_;
    ktq_writer_options opts_;
    OutputPlan plan_;
    std::vector<OutputTensor> &tensors_ = plan_.tensors;
    std::vector<std::vector<const OutputTensor *>> by_layer_;  // [0] = globals, [l + 1] = layer l
    std::vector<bool> done_;
    std::unique_ptr<TensorStore> shards_;
    JournalState journal_;
    bool finished_ = false;
    bool already_complete_ = false;  // resumed a conversion that had finished
    std::vector<std::string> finals_written_;  // by a finish() in progress
    std::vector<std::pair<std::string, std::string>> extra_files_;  // add_file(), in first-added order
    uint64_t output_bytes_ = 0;
    size_t output_files_ = 0;
    std::thread syncer_;
    std::mutex sync_mu_;
    std::condition_variable sync_cv_;
    std::vector<int> sync_pending_;  // layers written, not yet synced and journaled
    bool sync_stop_ = false;
    std::exception_ptr sync_error_;
};

// KTQ_FORMAT_HF_BF16: every input tensor except the FP8 block scales (folded
// into their weights by the reader), same names and shapes, floating dtypes
// -> BF16, integer tensors kept. Layers in state-dict order (layer by layer,
// then globals). config.json without the fp8 quantization_config, dtype
// bfloat16.
OutputPlan plan_bf16_checkpoint(const Model &model, const ktq_writer_options &opts);
uint64_t default_max_shard_bytes();

// Files of a model folder that are not weights: tokenizer, generation config,
// chat template, remote code.
std::vector<std::string> model_aux_files(const Model &model);

bool file_exists(const std::string &path);  // a regular file
std::string read_text_file(const std::string &path);

// Creates `dir` (and parents). Refuses the model's own folder, and a folder
// that holds files unless `overwrite` (which clears earlier ktq output), or
// `resume` and all it holds is an interrupted ktq conversion.
void prepare_output_dir(const std::string &dir, const std::string &model_dir, bool overwrite, bool resume);

}  // namespace ktq
