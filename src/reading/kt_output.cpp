#include "reading/kt_output.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <regex>
#include <tuple>

#include "runtime/error.h"
#include "runtime/files.h"
#include "runtime/strings.h"

namespace ktq {

namespace {

int proj_index(const std::string &p) { return p == "gate" ? 0 : p == "up" ? 1 : 2; }


uint64_t file_size_of(const std::string &path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) fail_errno(errno, path + ": cannot stat");
    return static_cast<uint64_t>(st.st_size);
}

void read_exact(const std::string &path, void *dst, uint64_t bytes) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_errno(errno, path + ": cannot open");
    uint64_t done = 0;
    while (done < bytes) {
        ssize_t n = ::pread(fd, static_cast<char *>(dst) + done, bytes - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            ::close(fd);
            fail_errno(e, path + ": short read");
        }
        done += static_cast<uint64_t>(n);
    }
    ::close(fd);
}

using kt_amx::part_name;

}  // namespace

KtOutput::~KtOutput() = default;

KtOutput::KtOutput(const std::string &dir) : dir_(dir) {
    if (!is_dir(dir)) fail(KTQ_ERR_NOT_FOUND, dir + ": no such folder");
    const auto names = list_dir(dir);
    bool has_st = false;
    for (const auto &n : names) has_st = has_st || ends_with(n, ".safetensors");
    using Key = std::tuple<int, int, int, int>;  // layer, proj, expert, part
    std::map<Key, KtPart> found;
    if (has_st) {
        static const std::regex re(R"(^blk\.(\d+)\.ffn_(gate|up|down)_exps\.(\d+)\.numa\.(\d+)\.(weight|scale)$)");
        for (const auto &n : names) {
            if (!ends_with(n, ".safetensors")) continue;
            files_.push_back(std::make_unique<SafetensorsFile>(dir + "/" + n, n, 100u << 20));
            const SafetensorsFile &f = *files_.back();
            for (const TensorEntry &t : f.tensors()) {
                std::smatch m;
                if (!std::regex_match(t.name, m, re)) continue;
                const bool is_scale = m[5] == "scale";
                if (t.shape.size() != 1 || t.dtype != (is_scale ? KTQ_DTYPE_F32 : KTQ_DTYPE_I8))
                    fail(KTQ_ERR_FORMAT, n + ": tensor '" + t.name + "' is not a 1-D " + (is_scale ? "F32" : "I8") +
                                             " array as kt-kernel's layout has it");
                const Key key{std::stoi(m[1]), proj_index(m[2]), std::stoi(m[3]), std::stoi(m[4])};
                KtPart &p = found[key];
                std::tie(p.layer, p.proj, p.expert, p.part) = key;
                (is_scale ? p.scale_file : p.file) = &f;
                (is_scale ? p.scale : p.weight) = &t;
            }
        }
        for (auto &kv : found) {
            KtPart &p = kv.second;
            if (!p.weight || !p.scale)
                fail(KTQ_ERR_FORMAT, dir + ": " + part_name(p.layer, p.proj, p.expert, p.part) + " has no " +
                                         (p.weight ? "scale" : "weight") + " tensor");
            p.weight_bytes = p.weight->nbytes();
            p.rows = p.scale->nbytes() / 4;
        }
    } else {
        static const std::regex re(R"(^(INT4|INT8)_(gate|up|down)_(\d+)_(\d+)Byte_(quant|scale)_\.kt$)");
        for (const auto &layer : list_dir(dir)) {
            if (layer.rfind("_layer_", 0) != 0) continue;
            for (const auto &numa : list_dir(dir + "/" + layer)) {
                if (numa.rfind("_numa_", 0) != 0) continue;
                const std::string folder = dir + "/" + layer + "/" + numa;
                for (const auto &file : list_dir(folder)) {
                    std::smatch m;
                    if (!std::regex_match(file, m, re)) continue;
                    const Key key{std::stoi(layer.substr(7)), proj_index(m[2]), std::stoi(m[3]), std::stoi(numa.substr(6))};
                    KtPart &p = found[key];
                    std::tie(p.layer, p.proj, p.expert, p.part) = key;
                    p.method = m[1] == "INT8" ? kt_amx::Method::Int8 : kt_amx::Method::Int4;
                    const uint64_t bytes = std::stoull(m[4]);
                    const std::string path = folder + "/" + file;
                    if (file_size_of(path) != bytes)
                        fail(KTQ_ERR_FORMAT, path + ": " + std::to_string(file_size_of(path)) +
                                                 " bytes, its name says " + std::to_string(bytes));
                    if (m[5] == "scale") {
                        p.scale_path = path;
                        p.rows = bytes / 4;
                    } else {
                        p.weight_path = path;
                        p.weight_bytes = bytes;
                    }
                }
            }
        }
        for (auto &kv : found) {
            KtPart &p = kv.second;
            if (p.weight_path.empty() || p.scale_path.empty())
                fail(KTQ_ERR_FORMAT, dir + ": " + part_name(p.layer, p.proj, p.expert, p.part) + " has no " +
                                         (p.weight_path.empty() ? "quant" : "scale") + " file");
        }
    }
    if (found.empty()) fail(KTQ_ERR_NOT_FOUND, dir + ": holds no kt-kernel expert weights (merged or loose)");

    // Shapes: a down part is [hidden, I/T]; gate/up parts are [I/T, hidden].
    // Merged files do not name the method: the hidden size (a down part's
    // rows) tells INT8 (n x hidden bytes) from INT4 (half of it).
    std::map<std::pair<int, int>, uint64_t> hidden;  // (layer, part) -> hidden size
    for (auto &kv : found)
        if (kv.second.proj == 2) hidden[{kv.second.layer, kv.second.part}] = kv.second.rows;
    for (auto &kv : found) {
        KtPart &p = kv.second;
        p.name = part_name(p.layer, p.proj, p.expert, p.part);
        auto h = hidden.find({p.layer, p.part});
        if (h == hidden.end() || p.rows == 0)
            fail(KTQ_ERR_FORMAT, dir + ": " + p.name + ": no down projection to take the hidden size from");
        if (merged() && p.proj != 2) {
            if (p.weight_bytes == p.rows * h->second)
                p.method = kt_amx::Method::Int8;
            else if (p.weight_bytes * 2 == p.rows * h->second)
                p.method = kt_amx::Method::Int4;
            else
                fail(KTQ_ERR_FORMAT, dir + ": " + p.name + ": " + std::to_string(p.weight_bytes) +
                                         " bytes fit neither INT8 nor INT4 [" + std::to_string(p.rows) + ", " +
                                         std::to_string(h->second) + "]");
        }
    }
    for (auto &kv : found) {
        KtPart &p = kv.second;
        if (merged() && p.proj == 2) {
            auto gate = found.find(Key{p.layer, 0, p.expert, p.part});
            if (gate == found.end())
                fail(KTQ_ERR_FORMAT, dir + ": " + p.name + ": no gate projection of the same expert to tell INT4 from INT8");
            p.method = gate->second.method;
        }
        p.cols = (p.method == kt_amx::Method::Int8 ? p.weight_bytes : p.weight_bytes * 2) / p.rows;
        const std::string why = kt_amx::shape_problem(p.method, p.rows, p.cols);
        if (!why.empty() || kt_amx::packed_bytes(p.method, p.rows, p.cols) != p.weight_bytes)
            fail(KTQ_ERR_FORMAT, dir + ": " + p.name + ": not a packed " + kt_amx::method_prefix(p.method) +
                                     " matrix (" + (why.empty() ? "size" : why) + ")");
        parts_.push_back(p);
    }
}

void KtOutput::read(const KtPart &p, uint8_t *packed, float *scales) const {
    if (p.file) {
        std::memcpy(packed, p.file->data(*p.weight), p.weight_bytes);
        std::memcpy(scales, p.scale_file->data(*p.scale), p.rows * 4);
        return;
    }
    read_exact(p.weight_path, packed, p.weight_bytes);
    read_exact(p.scale_path, scales, p.rows * 4);
}

void KtOutput::dequantize(const KtPart &p, float *dst) const {
    std::vector<uint8_t> packed(p.weight_bytes);
    std::vector<float> scales(p.rows);
    read(p, packed.data(), scales.data());
    kt_amx::unpack_dequantize(p.method, packed.data(), scales.data(), p.rows, p.cols, dst);
}

}  // namespace ktq
