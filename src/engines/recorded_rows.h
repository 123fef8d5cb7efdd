// Rows of float32 values appended in order and then read many times as one
// contiguous array: the inputs the AWQ engine records for its searches.
// They live in memory, or, when a host memory limit asks for it, in a
// memory-mapped temporary file (unlinked at once, so it goes with the
// process): the kernel writes those pages out and drops them when memory is
// short, as it does with the mapped input files. Disk blocks are reserved
// before they are written, so a full disk is an error, not a SIGBUS.
// Not thread-safe: one writer, then readers that do not append.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ktq {

class RecordedRows {
public:
    RecordedRows() = default;
    ~RecordedRows();
    RecordedRows(const RecordedRows &) = delete;
    RecordedRows &operator=(const RecordedRows &) = delete;

    // Before anything is appended: the values go to a temporary file in TMPDIR
    // (made at the first append); `what` names them in error messages.
    void use_file(const std::string &what);
    bool in_file() const { return file_; }

    void append(const float *x, size_t n);
    size_t size() const { return in_file() ? used_ : memory_.size(); }
    float *data() { return in_file() ? map_ : memory_.data(); }
    const float *data() const { return in_file() ? map_ : memory_.data(); }
    float &operator[](size_t i) { return data()[i]; }

private:
    std::vector<float> memory_;
    bool file_ = false;
    int fd_ = -1;
    float *map_ = nullptr;
    size_t capacity_ = 0;  // values the file and the mapping hold room for
    size_t used_ = 0;
    std::string name_, what_;
    void open_file();
    void grow(size_t values);
};

}  // namespace ktq
