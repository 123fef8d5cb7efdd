// ShardedSafetensorsWriter - writes a set of tensors, known in advance, as
// one model.safetensors or as model-0000i-of-0000n.safetensors shards plus
// model.safetensors.index.json, the way transformers' save_pretrained does.
//
// Because every name, dtype and shape is known when it is constructed, each
// shard's header and every tensor's file offset are fixed up front: tensor
// data can then be written in any order, by any thread, with pwrite(). Files
// are created as "<name>.ktq-partial", space is reserved at once (so a full
// disk is reported before hours of work), and only commit() fsyncs and
// renames them to their final names.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "writers/tensor_store.h"
#include "writers/writer.h"

namespace ktq {

class ShardedSafetensorsWriter : public TensorStore {
public:
    // With `reuse_partial`, the "*.ktq-partial" files of an interrupted run
    // are opened as they are (for resuming); they must exist with exactly the
    // planned size and header, else KTQ_ERR_STATE is thrown.
    ShardedSafetensorsWriter(const std::string &dir, const std::vector<const OutputTensor *> &tensors,
                             uint64_t max_shard_bytes, bool reuse_partial = false);
    // Shards given explicitly, each in payload order; `pt_metadata` writes
    // the {"format":"pt"} header metadata transformers' save_pretrained adds.
    ShardedSafetensorsWriter(const std::string &dir, const std::vector<std::vector<const OutputTensor *>> &groups,
                             bool pt_metadata, bool reuse_partial);
    ~ShardedSafetensorsWriter() override;

    void write(const OutputTensor &tensor, uint64_t offset, const void *data, size_t bytes) override;
    // Flushes everything written so far to the disk (fdatasync).
    void sync_data() override;
    // Whether the partial files stay in place on destruction (for a later resume).
    void set_keep_partial(bool keep) override { keep_partial_ = keep; }
    // fsync + rename every shard, then write the index (when sharded).
    void commit() override;
    // Close and unlink the partial files (no-op after commit()).
    void abort() noexcept override;

    size_t file_count() const { return shards_.size(); }
    uint64_t payload_bytes() const { return payload_bytes_; }
    const std::vector<std::string> &file_names() const { return names_; }

private:
    struct Shard {
        std::string name;
        int fd = -1;
        uint64_t data_start = 0;  // 8 + header length
        bool renamed = false;     // has its final name (commit in progress)
    };
    struct Placement {
        size_t shard;
        uint64_t offset;  // absolute file offset of the tensor's payload
        uint64_t nbytes;
    };

    std::string dir_;
    std::vector<Shard> shards_;
    std::vector<std::string> names_;
    std::map<std::string, Placement> placement_;
    std::map<std::string, std::string> weight_map_;
    uint64_t payload_bytes_ = 0;
    bool committed_ = false;
    bool keep_partial_ = false;
};

// Splits `tensors`, in order, into shards of at most `max_shard_bytes`
// payload (a larger tensor gets a shard of its own).
std::vector<std::vector<const OutputTensor *>> group_into_shards(const std::vector<const OutputTensor *> &tensors,
                                                                 uint64_t max_shard_bytes);

// Writes `content` to dir/name atomically (temporary file, fsync, rename).
void write_file_atomically(const std::string &dir, const std::string &name, const std::string &content);
void fsync_dir(const std::string &dir);
// pwrite() until done; failures name `what`.
void pwrite_all(int fd, const void *data, size_t bytes, uint64_t offset, const std::string &what);
constexpr const char *kPartialSuffix = ".ktq-partial";

}  // namespace ktq
