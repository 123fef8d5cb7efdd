// Helpers for the unit tests: temporary folders, crafted safetensors files,
// and the location of the shared test models.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ktq_test {

// A fresh empty folder under $TMPDIR, removed by the destructor.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string &path() const { return path_; }
    std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

void write_file(const std::string &path, const std::string &bytes);
std::string read_file(const std::string &path);
// Bytes of a safetensors file with `header_json` and `payload`.
std::string safetensors_bytes(const std::string &header_json, const std::string &payload);
struct TensorSpec {
    std::string name;
    std::string dtype;  // safetensors name, e.g. "BF16"
    std::vector<int64_t> shape;
};
// A valid safetensors file holding `tensors`; element i of every tensor has
// byte pattern (i * 7 + tensor index) so tensors differ.
std::string make_safetensors(const std::vector<TensorSpec> &tensors);

// A minimal config.json for a dense model.
std::string dense_config();
std::vector<std::string> list_dir(const std::string &dir);
// Standard base64 (golden vector files carry binary data so).
std::string b64decode(const std::string &in);

// ../shared/models/<name>, or "" when the shared material is not present.
std::string shared_model(const std::string &name);

}  // namespace ktq_test

#define KTQ_REQUIRE_SHARED(path)                                                          \
    do {                                                                                  \
        if ((path).empty()) GTEST_SKIP() << "shared test models not found (KTQ_SHARED_DIR)"; \
    } while (0)
