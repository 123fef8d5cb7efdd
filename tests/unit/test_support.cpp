#include "test_support.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ktq_test {

TempDir::TempDir() {
    const char *base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ktq-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::string cmd = "rm -rf '" + path_ + "'";
    if (system(cmd.c_str()) != 0) {
    }
}

void write_file(const std::string &path, const std::string &bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path);
}

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string safetensors_bytes(const std::string &header_json, const std::string &payload) {
    std::string out(8, '\0');
    uint64_t n = header_json.size();
    for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
    return out + header_json + payload;
}

std::string make_safetensors(const std::vector<TensorSpec> &tensors) {
    std::string header = "{", payload;
    for (size_t t = 0; t < tensors.size(); ++t) {
        const TensorSpec &spec = tensors[t];
        size_t esize = spec.dtype == "F32" || spec.dtype == "I32" ? 4 : spec.dtype.rfind("F8", 0) == 0 ? 1 : 2;
        size_t n = esize;
        std::string shape = "[";
        for (size_t d = 0; d < spec.shape.size(); ++d) {
            n *= static_cast<size_t>(spec.shape[d]);
            shape += (d ? "," : "") + std::to_string(spec.shape[d]);
        }
        shape += "]";
        size_t begin = payload.size();
        for (size_t i = 0; i < n; ++i) payload.push_back(static_cast<char>((i * 7 + t) & 0x3f));
        header += (t ? "," : "") + std::string("\"") + spec.name + "\":{\"dtype\":\"" + spec.dtype +
                  "\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(begin) + "," +
                  std::to_string(payload.size()) + "]}";
    }
    header += "}";
    return safetensors_bytes(header, payload);
}

std::string dense_config() {
    return R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","num_hidden_layers":1,
               "hidden_size":4,"intermediate_size":8,"vocab_size":16,"torch_dtype":"bfloat16"})";
}

std::vector<std::string> list_dir(const std::string &dir) {
    std::vector<std::string> names;
    if (DIR *d = opendir(dir.c_str())) {
        while (dirent *e = readdir(d)) {
            std::string n = e->d_name;
            if (n != "." && n != "..") names.push_back(n);
        }
        closedir(d);
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string shared_model(const std::string &name) {
    const char *env = getenv("KTQ_SHARED_DIR");
    std::string root = env && *env ? env : KTQ_SHARED_DIR;
    std::string path = root + "/models/" + name;
    struct stat st {};
    return stat((path + "/config.json").c_str(), &st) == 0 ? path : "";
}

std::string b64decode(const std::string &in) {
    static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    uint32_t val = 0;
    int bits = -8;
    for (char c : in) {
        if (c == '=') break;
        auto pos = chars.find(c);
        if (pos == std::string::npos) continue;
        val = ((val << 6) | static_cast<uint32_t>(pos)) & 0xffffffu;  // only the last 24 bits matter
        bits += 6;
        if (bits >= 0) {
            out.push_back(static_cast<char>((val >> bits) & 0xffu));
            bits -= 8;
        }
    }
    return out;
}

}  // namespace ktq_test
