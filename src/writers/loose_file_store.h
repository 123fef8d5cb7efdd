// LooseFileStore - one raw file per tensor, at OutputTensor::file below the
// output folder (kt-kernel's `_layer_L/_numa_P/INT4_gate_E_<n>Byte_quant_.kt`).
//
// Files are created lazily (a DeepSeek-V3 conversion has ~190,000 of them, so
// none is held open) inside a staging folder, "<dir>/.layers.ktq-partial/",
// flushed together with syncfs(), and commit() moves each `_layer_L` folder
// into place with one rename, layers in ascending order: a layer folder that
// has its final name is always complete, and the last layer's folder appears
// last. Free space is checked for the whole plan when the store opens, so a
// full disk is reported before the work.
#pragma once

#include <string>
#include <vector>

#include "writers/tensor_store.h"

namespace ktq {

class LooseFileStore : public TensorStore {
public:
    // With `reuse_partial`, the partial files already in `dir` are kept (the
    // journal says which are complete); otherwise stale ones are removed.
    LooseFileStore(const std::string &dir, const std::vector<const OutputTensor *> &tensors, bool reuse_partial);
    ~LooseFileStore() override;

    void write(const OutputTensor &tensor, uint64_t offset, const void *data, size_t bytes) override;
    void sync_data() override;
    void set_keep_partial(bool keep) override { keep_partial_ = keep; }
    // Fails with KTQ_ERR_STATE naming the first file that is missing or has
    // the wrong size, before renaming anything.
    void commit() override;
    void abort() noexcept override;

private:
    std::string staging() const;
    std::vector<std::string> layer_folders() const;  // "_layer_L", ascending L

    std::string dir_;
    std::vector<const OutputTensor *> tensors_;
    std::vector<std::string> renamed_;  // layer folders moved into place by a commit in progress
    bool committed_ = false;
    bool keep_partial_ = false;
};

// Removes the loose-layout folders (`_layer_N/...`, and the staging folder)
// of an earlier run from `dir`: only kt files, partial files and the emptied
// folders.
void remove_loose_layout(const std::string &dir);

}  // namespace ktq
