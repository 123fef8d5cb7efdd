// HfCheckpointWriter - output format KTQ_FORMAT_HF_BF16: a Hugging Face
// checkpoint folder with every floating tensor in BF16.
//
// Plan: every input tensor except the FP8 block scales (folded into their
// weights by the reader), same names and shapes, floating dtypes -> BF16,
// integer tensors kept as they are. Layers are ordered as transformers'
// state dicts are (layer by layer, then globals) and sharded by size.
// finish() writes config.json without the fp8 quantization_config and with
// dtype bfloat16, copies tokenizer/generation/chat-template files, and makes
// the safetensors visible last.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ktq/writer.h"
#include "reading/model.h"
#include "writers/output_journal.h"
#include "writers/safetensors_writer.h"
#include "writers/writer.h"

namespace ktq {

class HfCheckpointWriter : public Writer {
public:
    HfCheckpointWriter(const Model &model, const std::string &out_dir, const ktq_writer_options &opts);
    ~HfCheckpointWriter() override;

    const std::vector<const OutputTensor *> &tensors_of_layer(int layer) const override;
    void write(const OutputTensor &tensor, uint64_t offset, const void *data, size_t bytes) override;
    void layer_done(int layer) override;
    bool is_layer_done(int layer) const override;
    void finish() override;
    void abort() noexcept override;

    uint64_t output_bytes() const override { return output_bytes_; }
    size_t output_files() const override { return output_files_; }
    int num_layers() const override { return static_cast<int>(by_layer_.size()) - 1; }

private:
    std::string rewritten_config() const;
    std::vector<std::string> aux_files() const;

    const Model &model_;
    std::string out_dir_;
    ktq_writer_options opts_;
    std::vector<OutputTensor> tensors_;
    std::vector<std::vector<const OutputTensor *>> by_layer_;  // [0] = globals, [l + 1] = layer l
    std::vector<bool> done_;
    std::unique_ptr<ShardedSafetensorsWriter> shards_;
    JournalState journal_;
    bool finished_ = false;
    bool already_complete_ = false;  // resumed a conversion that had finished
    std::vector<std::string> finals_written_;  // by a finish() in progress
    uint64_t output_bytes_ = 0;
    size_t output_files_ = 0;
};

// The tensors KTQ_FORMAT_HF_BF16 writes for `model`, in file order.
std::vector<OutputTensor> plan_bf16_checkpoint(const Model &model);
uint64_t default_max_shard_bytes();

// Creates `dir` (and parents). Refuses the model's own folder, and a folder
// that holds files unless `overwrite` (which clears earlier ktq output), or
// `resume` and all it holds is an interrupted ktq conversion.
void prepare_output_dir(const std::string &dir, const std::string &model_dir, bool overwrite, bool resume);

}  // namespace ktq
