// The GGUF v3 container (what llama.cpp's gguf.cpp and Candle's gguf_file
// read): "GGUF", version 3, tensor and key-value counts, the key-values,
// the tensor infos (name, dims with ne[0] the innermost, ggml type, offset
// into the data section), padding to the alignment, then the data. Values
// are little-endian; strings are a u64 length plus bytes. Only value types
// both llama.cpp and Candle read are produced.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace ktq::gguf {

constexpr uint32_t kAlignment = 32;  // general.alignment's default

class Metadata {
public:
    void add_u32(const std::string &key, uint32_t v);
    void add_i32(const std::string &key, int32_t v);
    void add_u64(const std::string &key, uint64_t v);
    void add_f32(const std::string &key, float v);
    void add_bool(const std::string &key, bool v);
    void add_string(const std::string &key, const std::string &v);
    void add_string_array(const std::string &key, const std::vector<std::string> &v);
    void add_i32_array(const std::string &key, const std::vector<int32_t> &v);
    void add_f32_array(const std::string &key, const std::vector<float> &v);

    uint64_t count() const { return keys_.size(); }
    bool has(const std::string &key) const { return keys_.count(key) != 0; }
    const std::string &bytes() const { return bytes_; }

private:
    void key(const std::string &k, uint32_t type);
    std::string bytes_;
    std::set<std::string> keys_;
};

struct TensorInfo {
    std::string name;
    std::vector<uint64_t> ne;  // ne[0] = row length (innermost)
    uint32_t type = 0;         // ggml type id
    uint64_t nbytes = 0;
    uint64_t offset = 0;       // into the data section; set by header()
};

// The bytes before the data section, padded to the alignment; assigns each
// tensor's offset (aligned) and returns the data section's size in *data_bytes.
std::string header(const Metadata &kv, std::vector<TensorInfo> &tensors, uint64_t *data_bytes);

}  // namespace ktq::gguf
