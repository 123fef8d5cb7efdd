// TensorStore - where a CheckpointWriter puts tensor bytes: safetensors
// shards (ShardedSafetensorsWriter) or one raw file per tensor
// (LooseFileStore, kt-kernel's --no-merge-safetensor layout). Both write
// under "*.ktq-partial" names, make nothing visible before commit(), and can
// be reopened over an interrupted run's partial files.
#pragma once

#include <cstddef>
#include <cstdint>

#include "writers/writer.h"

namespace ktq {

class TensorStore {
public:
    virtual ~TensorStore() = default;
    // Stores `bytes` bytes of `tensor` at byte `offset` of its payload.
    // Thread-safe for distinct ranges.
    virtual void write(const OutputTensor &tensor, uint64_t offset, const void *data, size_t bytes) = 0;
    // Everything written so far reaches the disk (the journal relies on it).
    virtual void sync_data() = 0;
    // Whether partial files survive abort() / destruction (for a later resume).
    virtual void set_keep_partial(bool keep) = 0;
    // false: commit() renames without fsyncing the data first (ktq_writer_options.no_sync).
    void set_sync_on_commit(bool sync) { sync_on_commit_ = sync; }
    // Makes every file visible under its final name.
    virtual void commit() = 0;
    // Removes (or, with keep_partial, keeps) the partial files.
    virtual void abort() noexcept = 0;

protected:
    bool sync_on_commit_ = true;  // every store's commit() reads it
};

}  // namespace ktq
