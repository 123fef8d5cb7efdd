#include "writers/gguf_format.h"

#include <cstring>

#include "runtime/error.h"

namespace ktq::gguf {

namespace {

enum : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9, kU64 = 10 };

template <typename T>
void put(std::string &out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
    out.append(b, sizeof(T));
}

void put_string(std::string &out, const std::string &s) {
    put<uint64_t>(out, s.size());
    out += s;
}

}  // namespace

void Metadata::key(const std::string &k, uint32_t type) {
    if (!keys_.insert(k).second) fail(KTQ_ERR_INTERNAL, "GGUF key '" + k + "' written twice");
    put_string(bytes_, k);
    put<uint32_t>(bytes_, type);
}

void Metadata::add_u32(const std::string &k, uint32_t v) { key(k, kU32), put(bytes_, v); }
void Metadata::add_i32(const std::string &k, int32_t v) { key(k, kI32), put(bytes_, v); }
void Metadata::add_u64(const std::string &k, uint64_t v) { key(k, kU64), put(bytes_, v); }
void Metadata::add_f32(const std::string &k, float v) { key(k, kF32), put(bytes_, v); }
void Metadata::add_bool(const std::string &k, bool v) { key(k, kBool), put<uint8_t>(bytes_, v ? 1 : 0); }
void Metadata::add_string(const std::string &k, const std::string &v) { key(k, kString), put_string(bytes_, v); }

void Metadata::add_string_array(const std::string &k, const std::vector<std::string> &v) {
    key(k, kArray);
    put<uint32_t>(bytes_, kString);
    put<uint64_t>(bytes_, v.size());
    for (const auto &s : v) put_string(bytes_, s);
}

void Metadata::add_i32_array(const std::string &k, const std::vector<int32_t> &v) {
    key(k, kArray);
    put<uint32_t>(bytes_, kI32);
    put<uint64_t>(bytes_, v.size());
    for (int32_t x : v) put(bytes_, x);
}

void Metadata::add_f32_array(const std::string &k, const std::vector<float> &v) {
    key(k, kArray);
    put<uint32_t>(bytes_, kF32);
    put<uint64_t>(bytes_, v.size());
    for (float x : v) put(bytes_, x);
}

std::string header(const Metadata &kv, std::vector<TensorInfo> &tensors, uint64_t *data_bytes) {
    std::string out = "GGUF";
    put<uint32_t>(out, 3);
    put<uint64_t>(out, tensors.size());
    put<uint64_t>(out, kv.count());
    out += kv.bytes();
    uint64_t offset = 0;
    for (auto &t : tensors) {
        t.offset = offset;
        offset += (t.nbytes + kAlignment - 1) / kAlignment * kAlignment;
        put_string(out, t.name);
        put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
        for (uint64_t d : t.ne) put<uint64_t>(out, d);
        put<uint32_t>(out, t.type);
        put<uint64_t>(out, t.offset);
    }
    out.append((kAlignment - out.size() % kAlignment) % kAlignment, '\0');
    *data_bytes = offset;
    return out;
}

}  // namespace ktq::gguf
