// GgufFile - a GGUF v2/v3 file opened for reading weights back (ktq's own
// files, llama.cpp's, llama-quantize's): the key-values a reader needs
// (numbers and strings; arrays are skipped), the tensor infos, and rows of a
// tensor dequantized to float32 by ktq's ggml block dequantizers.
//
// Every count, length and offset is checked against the file's size before
// use, so a truncated or malicious file fails with KTQ_ERR_FORMAT naming the
// file and the field or tensor, never a crash. Tensor data is read with
// pread on demand; immutable after open, safe to read from many threads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "ktq/quant.h"

namespace ktq {

class GgufFile {
public:
    struct Tensor {
        std::string name;
        std::vector<uint64_t> ne;  // ne[0] = row length
        ktq_ggml_type type;
        uint64_t offset = 0;       // absolute, in the file
        uint64_t rows() const;     // product of ne[1..]
        uint64_t row_bytes = 0;
    };
    using Value = std::variant<int64_t, double, std::string>;

    explicit GgufFile(const std::string &path);
    ~GgufFile();
    GgufFile(const GgufFile &) = delete;
    GgufFile &operator=(const GgufFile &) = delete;

    const std::string &path() const { return path_; }
    const std::map<std::string, Tensor> &tensors() const { return tensors_; }
    const Tensor *find(const std::string &name) const;
    // A number or string key-value; `fallback` when absent (or an array).
    int64_t get_int(const std::string &key, int64_t fallback) const;
    std::string get_string(const std::string &key, const std::string &fallback) const;
    // A string array of at most kMaxKeptStrings items (e.g. imatrix.datasets); empty when absent.
    // Longer ones (the tokenizer's) are skipped, not kept.
    std::vector<std::string> get_strings(const std::string &key) const;
    static constexpr uint64_t kMaxKeptStrings = 1024;

    // Rows [first, first + count) of `t` (rows counted over every dimension
    // past the first, so a stacked expert e starts at row e * ne[1]) as
    // float32 into dst (count * ne[0] values).
    void read_rows(const Tensor &t, uint64_t first, uint64_t count, float *dst) const;

private:
    std::string path_;
    int fd_ = -1;
    uint64_t size_ = 0;
    std::map<std::string, Tensor> tensors_;
    std::map<std::string, Value> kv_;
    std::map<std::string, std::vector<std::string>> string_arrays_;
};

}  // namespace ktq
