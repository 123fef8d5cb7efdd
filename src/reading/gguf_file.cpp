#include "reading/gguf_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "quant/ggml_blocks.h"
#include "runtime/error.h"

namespace ktq {

namespace {

// GGUF value types (gguf.h's enum gguf_type).
enum : uint32_t { U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 };

size_t scalar_size(uint32_t type) {
    switch (type) {
    case U8: case I8: case BOOL: return 1;
    case U16: case I16: return 2;
    case U32: case I32: case F32: return 4;
    case U64: case I64: case F64: return 8;
    default: return 0;
    }
}

// Reads the header bytes sequentially, each read checked against what is there.
class Cursor {
public:
    Cursor(const std::string &path, const std::vector<uint8_t> &bytes) : path_(path), b_(bytes) {}
    template <typename T>
    T get(const char *what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, b_.data() + at_, sizeof(T));
        at_ += sizeof(T);
        return v;
    }
    std::string string(const char *what) {
        const uint64_t n = get<uint64_t>(what);
        need(n, what);
        std::string s(reinterpret_cast<const char *>(b_.data() + at_), static_cast<size_t>(n));
        at_ += static_cast<size_t>(n);
        return s;
    }
    void skip(uint64_t n, const char *what) {
        need(n, what);
        at_ += static_cast<size_t>(n);
    }
    size_t at() const { return at_; }
    [[noreturn]] void bad(const std::string &why) const { fail(KTQ_ERR_FORMAT, path_ + ": " + why); }

private:
    void need(uint64_t n, const char *what) const {
        if (n > b_.size() - at_)
            bad(std::string("truncated GGUF header (") + what + " runs past the end of the file)");
    }
    const std::string &path_;
    const std::vector<uint8_t> &b_;
    size_t at_ = 0;
};

void pread_all(int fd, void *dst, uint64_t bytes, uint64_t offset, const std::string &path) {
    auto *p = static_cast<uint8_t *>(dst);
    while (bytes > 0) {
        const ssize_t n = ::pread(fd, p, static_cast<size_t>(std::min<uint64_t>(bytes, 1u << 30)),
                                  static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail(KTQ_ERR_IO, path + ": read failed" + (n < 0 ? std::string(": ") + std::strerror(errno) : ""));
        p += n;
        bytes -= static_cast<uint64_t>(n);
        offset += static_cast<uint64_t>(n);
    }
}

}  // namespace

uint64_t GgufFile::Tensor::rows() const {
    uint64_t r = 1;
    for (size_t d = 1; d < ne.size(); ++d) r *= ne[d];
    return r;
}

GgufFile::GgufFile(const std::string &path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(errno == ENOENT ? KTQ_ERR_NOT_FOUND : KTQ_ERR_IO, path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
        ::close(fd_);
        fail(KTQ_ERR_IO, path + ": " + std::strerror(errno));
    }
    size_ = static_cast<uint64_t>(st.st_size);
    try {
        // The header is read whole (up to 256 MiB: tokenizer arrays of large vocabularies are tens of MB).
        const uint64_t head = std::min<uint64_t>(size_, 256ull << 20);
        std::vector<uint8_t> bytes(static_cast<size_t>(head));
        pread_all(fd_, bytes.data(), head, 0, path);
        Cursor c(path, bytes);
        if (head < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0) c.bad("not a GGUF file (no GGUF magic)");
        c.skip(4, "magic");
        const uint32_t version = c.get<uint32_t>("version");
        if (version != 2 && version != 3) c.bad("GGUF version " + std::to_string(version) + " (2 and 3 are read)");
        const uint64_t n_tensors = c.get<uint64_t>("tensor count"), n_kv = c.get<uint64_t>("key-value count");
        // Each tensor info and key-value takes at least 8 bytes: larger counts cannot fit the file.
        if (n_tensors > size_ / 8 || n_kv > size_ / 8) c.bad("tensor or key-value count larger than the file");
        for (uint64_t i = 0; i < n_kv; ++i) {
            const std::string key = c.string("key");
            const uint32_t type = c.get<uint32_t>("value type");
            if (type == STRING) {
                kv_[key] = c.string(key.c_str());
            } else if (type == ARRAY) {
                const uint32_t item = c.get<uint32_t>(key.c_str());
                const uint64_t n = c.get<uint64_t>(key.c_str());
                if (item == STRING) {
                    std::vector<std::string> items;
                    for (uint64_t k = 0; k < n; ++k) {
                        std::string s = c.string(key.c_str());
                        if (n <= kMaxKeptStrings) items.push_back(std::move(s));
                    }
                    if (n <= kMaxKeptStrings) string_arrays_[key] = std::move(items);
                } else if (scalar_size(item)) {
                    if (n > size_ / scalar_size(item)) c.bad("array '" + key + "' larger than the file");
                    c.skip(n * scalar_size(item), key.c_str());
                } else {
                    c.bad("array '" + key + "' of value type " + std::to_string(item) + " (nested arrays are not read)");
                }
            } else if (type == F32) {
                kv_[key] = static_cast<double>(c.get<float>(key.c_str()));
            } else if (type == F64) {
                kv_[key] = c.get<double>(key.c_str());
            } else if (scalar_size(type)) {
                int64_t v = 0;
                switch (type) {
                case U8: v = c.get<uint8_t>(key.c_str()); break;
                case I8: v = c.get<int8_t>(key.c_str()); break;
                case BOOL: v = c.get<uint8_t>(key.c_str()) != 0; break;
                case U16: v = c.get<uint16_t>(key.c_str()); break;
                case I16: v = c.get<int16_t>(key.c_str()); break;
                case U32: v = c.get<uint32_t>(key.c_str()); break;
                case I32: v = c.get<int32_t>(key.c_str()); break;
                case U64: v = static_cast<int64_t>(c.get<uint64_t>(key.c_str())); break;
                default: v = c.get<int64_t>(key.c_str()); break;
                }
                kv_[key] = v;
            } else {
                c.bad("key '" + key + "' has unknown value type " + std::to_string(type));
            }
        }
        std::vector<Tensor> infos;
        for (uint64_t i = 0; i < n_tensors; ++i) {
            Tensor t;
            t.name = c.string("tensor name");
            const uint32_t dims = c.get<uint32_t>(t.name.c_str());
            if (dims == 0 || dims > 4) c.bad("tensor '" + t.name + "' has " + std::to_string(dims) + " dimensions");
            for (uint32_t d = 0; d < dims; ++d) t.ne.push_back(c.get<uint64_t>(t.name.c_str()));
            const uint32_t type = c.get<uint32_t>(t.name.c_str());
            t.offset = c.get<uint64_t>(t.name.c_str());
            // Only numbers within ktq_ggml_type's range become one (anything else would be UB).
            const GgmlTypeTraits *tr = type < 32 ? ggml_traits(static_cast<ktq_ggml_type>(type)) : nullptr;
            if (tr) t.type = tr->type;
            if (!tr) c.bad("tensor '" + t.name + "' has ggml type " + std::to_string(type) + ", which ktq does not read");
            if (t.ne[0] == 0 || t.ne[0] % tr->block_size)
                c.bad("tensor '" + t.name + "': row length " + std::to_string(t.ne[0]) + " is not whole " + tr->name + " blocks");
            // A row longer than the file is rejected before the multiplication, which could wrap
            // to zero (a fuzzer found ne[0] = 2^62 of a 4-byte type) and divide by zero below.
            if (t.ne[0] / tr->block_size > size_ / tr->type_size)
                c.bad("tensor '" + t.name + "' is larger than the file");
            t.row_bytes = t.ne[0] / tr->block_size * tr->type_size;
            uint64_t rows = 1;
            for (size_t d = 1; d < t.ne.size(); ++d) {
                if (t.ne[d] == 0 || rows > size_ / t.ne[d]) c.bad("tensor '" + t.name + "' is larger than the file");
                rows *= t.ne[d];
            }
            if (rows > size_ / t.row_bytes) c.bad("tensor '" + t.name + "' is larger than the file");
            if (!tensors_.emplace(t.name, t).second) c.bad("tensor '" + t.name + "' appears twice");
            infos.push_back(t);
        }
        const int64_t align = get_int("general.alignment", 32);
        if (align <= 0 || align > (1 << 20) || (align & (align - 1))) c.bad("general.alignment " + std::to_string(align));
        const uint64_t data = (static_cast<uint64_t>(c.at()) + static_cast<uint64_t>(align) - 1) /
                              static_cast<uint64_t>(align) * static_cast<uint64_t>(align);
        for (auto &[name, t] : tensors_) {
            const uint64_t tensor_bytes = t.rows() * t.row_bytes;
            if (t.offset > size_ || data > size_ - t.offset || tensor_bytes > size_ - data - t.offset)
                fail(KTQ_ERR_FORMAT, path + ": tensor '" + name + "' runs past the end of the file (truncated?)");
            t.offset += data;
        }
    } catch (...) {
        ::close(fd_);
        throw;
    }
}

GgufFile::~GgufFile() {
    if (fd_ >= 0) ::close(fd_);
}

const GgufFile::Tensor *GgufFile::find(const std::string &name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

int64_t GgufFile::get_int(const std::string &key, int64_t fallback) const {
    auto it = kv_.find(key);
    if (it == kv_.end()) return fallback;
    if (auto *v = std::get_if<int64_t>(&it->second)) return *v;
    fail(KTQ_ERR_FORMAT, path_ + ": key '" + key + "' is not an integer");
}

std::string GgufFile::get_string(const std::string &key, const std::string &fallback) const {
    auto it = kv_.find(key);
    if (it == kv_.end()) return fallback;
    if (auto *v = std::get_if<std::string>(&it->second)) return *v;
    fail(KTQ_ERR_FORMAT, path_ + ": key '" + key + "' is not a string");
}

std::vector<std::string> GgufFile::get_strings(const std::string &key) const {
    auto it = string_arrays_.find(key);
    return it == string_arrays_.end() ? std::vector<std::string>{} : it->second;
}

void GgufFile::read_rows(const Tensor &t, uint64_t first, uint64_t count, float *dst) const {
    if (first > t.rows() || count > t.rows() - first)
        fail(KTQ_ERR_INVALID_ARGUMENT, path_ + ": rows past the end of tensor '" + t.name + "'");
    const GgmlTypeTraits *tr = ggml_traits(t.type);
    std::vector<uint8_t> raw(static_cast<size_t>(count * t.row_bytes));
    pread_all(fd_, raw.data(), raw.size(), t.offset + first * t.row_bytes, path_);
    tr->dequantize(dst, raw.data(), static_cast<size_t>(count * t.ne[0] / tr->block_size));
}

}  // namespace ktq
