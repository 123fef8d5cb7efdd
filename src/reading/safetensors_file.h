// SafetensorsFile - one memory-mapped .safetensors file with a fully
// validated header. The payload is never copied: tensors are read straight
// out of the mapping, and release() hands finished ranges back to the kernel
// so that streaming over a file much larger than RAM keeps the resident set
// small.
//
// Immutable after open(); safe to read from many threads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ktq/common.h"
#include "reading/safetensors_header.h"

namespace ktq {


class SafetensorsFile {
public:
    // Maps `path` and validates its header. `display` is the name used in
    // error messages (the path relative to the model folder).
    SafetensorsFile(const std::string &path, const std::string &display, uint64_t max_header_bytes);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile &) = delete;
    SafetensorsFile &operator=(const SafetensorsFile &) = delete;

    const std::string &path() const { return path_; }
    const std::string &display_name() const { return display_; }
    const std::vector<TensorEntry> &tensors() const { return tensors_; }
    const std::map<std::string, std::string> &metadata() const { return metadata_; }
    uint64_t file_size() const { return size_; }
    // Modification time in nanoseconds (identifies the file for resuming).
    int64_t mtime_ns() const { return mtime_ns_; }

    // Pointer to the first byte of the tensor's payload.
    const uint8_t *data(const TensorEntry &t) const { return data_ + t.begin; }
    // Copies `bytes` bytes starting at `src` (a pointer into this file's
    // data, from data()) into `dst`, with pread rather than through the
    // mapping.
    void copy_out(const uint8_t *src, size_t bytes, void *dst) const;
    // Drops the pages of [begin, end) of the data section from this process.
    void release(uint64_t begin, uint64_t end) const;

private:
    std::string path_;
    std::string display_;
    uint64_t size_ = 0;
    int64_t mtime_ns_ = 0;
    void *map_ = nullptr;
    int fd_ = -1;
    const uint8_t *data_ = nullptr;
    std::vector<TensorEntry> tensors_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace ktq
