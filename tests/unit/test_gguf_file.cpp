// GgufFile on hand-built files: what it reads back, and the errors a
// truncated or hostile file gets (each names the file and the field or
// tensor). The fuzz target fuzz_gguf covers the rest of the input space.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "reading/gguf_file.h"
#include "runtime/error.h"

namespace {

struct Bytes {
    std::string b;
    template <typename T>
    Bytes &put(T v) {
        b.append(reinterpret_cast<const char *>(&v), sizeof v);
        return *this;
    }
    Bytes &str(const std::string &s) {
        put<uint64_t>(s.size());
        b += s;
        return *this;
    }
    void pad(size_t align) { b.append((align - b.size() % align) % align, '\0'); }
};

// A GGUF v3 file: one u32 and one string key, then tensors of (name, ne, type) with their data.
std::string gguf(const std::vector<std::tuple<std::string, std::vector<uint64_t>, uint32_t, std::string>> &tensors) {
    Bytes h;
    h.b = "GGUF";
    h.put<uint32_t>(3).put<uint64_t>(tensors.size()).put<uint64_t>(2);
    h.str("general.architecture").put<uint32_t>(8).str("llama");
    h.str("llama.block_count").put<uint32_t>(4).put<uint32_t>(7);
    uint64_t offset = 0;
    std::string data;
    for (const auto &[name, ne, type, payload] : tensors) {
        h.str(name).put<uint32_t>(static_cast<uint32_t>(ne.size()));
        for (uint64_t d : ne) h.put<uint64_t>(d);
        h.put<uint32_t>(type).put<uint64_t>(offset);
        data += payload;
        data.append((32 - data.size() % 32) % 32, '\0');
        offset = data.size();
    }
    h.pad(32);
    return h.b + data;
}

std::string write_temp(const std::string &bytes) {
    char path[] = "/tmp/ktq-gguf-test-XXXXXX";
    const int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    close(fd);
    return path;
}

std::string f32_payload(const std::vector<float> &v) { return std::string(reinterpret_cast<const char *>(v.data()), v.size() * 4); }

// The message of the ktq::Error opening `bytes` throws, or "" when it opens.
std::string open_error(const std::string &bytes, ktq_status *status = nullptr) {
    const std::string path = write_temp(bytes);
    std::string message;
    try {
        ktq::GgufFile g(path);
    } catch (const ktq::Error &e) {
        message = e.what();
        if (status) *status = e.status();
    }
    std::remove(path.c_str());
    return message;
}

}  // namespace

TEST(GgufFile, ReadsKeysAndRowsBack) {
    const std::vector<float> w = {1, 2, 3, 4, 5, 6, 7, 8};
    const std::string path = write_temp(gguf({{"w", {4, 2}, 0, f32_payload(w)}, {"n", {3}, 0, f32_payload({9, 8, 7})}}));
    ktq::GgufFile g(path);
    EXPECT_EQ(g.get_string("general.architecture", ""), "llama");
    EXPECT_EQ(g.get_int("llama.block_count", 0), 7);
    EXPECT_EQ(g.get_int("absent", -5), -5);
    const auto *t = g.find("w");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->rows(), 2u);
    std::vector<float> row(4);
    g.read_rows(*t, 1, 1, row.data());
    EXPECT_EQ(row, std::vector<float>({5, 6, 7, 8}));
    EXPECT_THROW(g.read_rows(*t, 1, 2, row.data()), ktq::Error);
    std::remove(path.c_str());
}

TEST(GgufFile, HostileFilesAreFormatErrorsNamingWhat) {
    const std::string ok = gguf({{"w", {32, 2}, 0, f32_payload(std::vector<float>(64, 1.0f))}});
    ktq_status st = KTQ_OK;
    // Truncated anywhere: the header, or the data of a tensor.
    for (size_t cut : {size_t(3), size_t(20), size_t(60), ok.size() - 8}) {
        const std::string m = open_error(ok.substr(0, cut), &st);
        EXPECT_EQ(st, KTQ_ERR_FORMAT) << cut << ": " << m;
        EXPECT_NE(m.find("ktq-gguf-test"), std::string::npos) << m;
    }
    // An unknown ggml type number (the fuzzer's first find: it must not become an enum value).
    EXPECT_NE(open_error(gguf({{"w", {32}, 1000, std::string(128, '\0')}})).find("'w' has ggml type 1000"),
              std::string::npos);
    // A row that is not whole blocks of its type (Q8_0: 32 values).
    EXPECT_NE(open_error(gguf({{"q", {20}, 8, std::string(34, '\0')}})).find("row length 20"), std::string::npos);
    // Dimensions whose product overflows or exceeds the file.
    EXPECT_NE(open_error(gguf({{"big", {32, 1ull << 40, 1ull << 40}, 0, ""}})).find("'big' is larger than the file"),
              std::string::npos);
    // A row so long its byte count wraps to zero (2^62 f32 values: the fuzzer's second find, a division by zero).
    EXPECT_NE(open_error(gguf({{"long", {1ull << 62}, 0, ""}})).find("'long' is larger than the file"),
              std::string::npos);
    // The same tensor twice, and a count of tensors no file could hold.
    EXPECT_NE(open_error(gguf({{"w", {8}, 0, f32_payload(std::vector<float>(8))}, {"w", {8}, 0, f32_payload(std::vector<float>(8))}}))
                  .find("'w' appears twice"),
              std::string::npos);
    std::string huge = ok;
    const uint64_t n = 1ull << 60;
    std::memcpy(&huge[8], &n, 8);
    EXPECT_NE(open_error(huge).find("count larger than the file"), std::string::npos);
    EXPECT_NE(open_error("not a gguf file at all").find("no GGUF magic"), std::string::npos);
}
