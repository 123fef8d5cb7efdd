// Checkpoint - the tensors of a checkpoint folder: one model.safetensors, or
// the shards named by model.safetensors.index.json. Tensor names are unique
// across the whole checkpoint; each resolves to (file, entry).
//
// Immutable after construction; safe to read from many threads.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "reading/safetensors_file.h"

namespace ktq {

struct TensorRef {
    const SafetensorsFile *file = nullptr;
    const TensorEntry *entry = nullptr;
};

class Checkpoint {
public:
    // `path` is a folder, or one .safetensors file (its folder is the model
    // folder).
    Checkpoint(const std::string &path, uint64_t max_header_bytes);

    const std::string &dir() const { return dir_; }
    // All tensor names, sorted.
    const std::vector<std::string> &names() const { return names_; }
    // nullptr if no such tensor.
    const TensorRef *find(const std::string &name) const;
    const TensorRef &at(const std::string &name) const;
    const std::vector<std::unique_ptr<SafetensorsFile>> &files() const { return files_; }
    uint64_t total_bytes() const { return total_bytes_; }

    // A tensor that exists only as a view the Model computes (a dequantized
    // compressed-tensors weight) takes the place of the stored tensors it is
    // made from: `entry` is listed by names() and found by find(); the
    // `hidden` ones stay findable but are no longer listed. Called while the
    // Model is being built, never after.
    void add_virtual(TensorEntry entry, const SafetensorsFile *file, const std::vector<std::string> &hidden);

private:
    void open_single(const std::string &file, const std::string &display, uint64_t max_header_bytes);
    void open_index(const std::string &index_path, uint64_t max_header_bytes);

    std::string dir_;
    std::vector<std::unique_ptr<SafetensorsFile>> files_;
    std::map<std::string, TensorRef> tensors_;
    std::vector<std::string> names_;
    std::deque<TensorEntry> virtual_entries_;  // stable addresses for TensorRef
    uint64_t total_bytes_ = 0;
};

// The (tensor, shard file) pairs of a model.safetensors.index.json, each
// shard path checked to stay inside the model folder.
std::vector<std::pair<std::string, std::string>> parse_weight_map(const std::string &text,
                                                                  const std::string &display);

// True if `name` is a relative path that stays inside its folder (no "..",
// not absolute, no empty components).
bool is_safe_relative_path(const std::string &name);

}  // namespace ktq
