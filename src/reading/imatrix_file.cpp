#include "reading/imatrix_file.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "reading/gguf_file.h"
#include "runtime/error.h"
#include "runtime/strings.h"

namespace ktq {

namespace {

void check_finite(const Imatrix &m, const std::string &name, const std::vector<float> &v) {
    for (float f : v)
        if (!std::isfinite(f))
            fail(KTQ_ERR_FORMAT, m.path + ": importance of '" + name + "' holds a non-finite value (" +
                                     std::to_string(f) + "); llama-quantize refuses such an imatrix too");
}

void load_gguf(Imatrix &m) {
    GgufFile f(m.path);
    constexpr int64_t kAbsent = std::numeric_limits<int64_t>::min();
    const int64_t chunk_count = f.get_int("imatrix.chunk_count", kAbsent);
    const int64_t chunk_size = f.get_int("imatrix.chunk_size", kAbsent);
    m.datasets = f.get_strings("imatrix.datasets");
    if (chunk_count == kAbsent || chunk_size == kAbsent || m.datasets.empty())
        fail(KTQ_ERR_FORMAT, m.path + ": a GGUF imatrix without imatrix.datasets / imatrix.chunk_count / "
                                      "imatrix.chunk_size (llama-quantize requires them too)");
    m.chunk_count = chunk_count;
    const std::string sums_suffix = ".in_sum2", counts_suffix = ".counts";
    for (const auto &[tname, t] : f.tensors()) {
        if (!ends_with(tname, sums_suffix)) continue;
        const std::string name = tname.substr(0, tname.size() - sums_suffix.size());
        const GgufFile::Tensor *counts = f.find(name + counts_suffix);
        if (!counts) fail(KTQ_ERR_FORMAT, m.path + ": '" + tname + "' has no '" + name + counts_suffix + "'");
        if (t.type != KTQ_GGML_F32 || counts->type != KTQ_GGML_F32)
            fail(KTQ_ERR_FORMAT, m.path + ": sums and counts of '" + name + "' must be F32");
        const uint64_t ncounts = counts->ne[0] * counts->rows();
        const uint64_t nval = t.ne[0] * t.rows();
        if (ncounts == 0 || nval % ncounts != 0)
            fail(KTQ_ERR_FORMAT, m.path + ": '" + name + "' has " + std::to_string(nval) + " sums for " +
                                     std::to_string(ncounts) + " counts");
        std::vector<float> sums(static_cast<size_t>(nval)), cnt(static_cast<size_t>(ncounts));
        f.read_rows(t, 0, t.rows(), sums.data());
        f.read_rows(*counts, 0, counts->rows(), cnt.data());
        const uint64_t ne0 = nval / ncounts;
        auto e = std::make_shared<std::vector<float>>(static_cast<size_t>(nval));
        auto &tokens = m.counts[name];
        for (uint64_t j = 0; j < ncounts; ++j) {
            // llama.cpp rounds the stored float count to an integer, then divides by it as a float.
            tokens.push_back(std::llround(cnt[static_cast<size_t>(j)]));
            const float count = static_cast<float>(tokens.back());
            for (uint64_t i = 0; i < ne0; ++i)
                (*e)[j * ne0 + i] = count > 0.0f ? sums[j * ne0 + i] / count : 1.0f;
        }
        check_finite(m, name, *e);
        m.entries[name] = std::move(e);
    }
    for (const auto &[tname, t] : f.tensors())
        if (ends_with(tname, counts_suffix) &&
            !f.find(tname.substr(0, tname.size() - counts_suffix.size()) + sums_suffix))
            fail(KTQ_ERR_FORMAT, m.path + ": '" + tname + "' has no matching .in_sum2");
    if (m.entries.empty()) fail(KTQ_ERR_FORMAT, m.path + ": no importance entries (*.in_sum2)");
}

// Reads the legacy format with every length checked against what is left of the file.
class LegacyReader {
public:
    explicit LegacyReader(const std::string &path) : path_(path) {
        std::ifstream in(path, std::ios::binary);
        if (!in) fail(KTQ_ERR_NOT_FOUND, path + ": cannot open the imatrix file");
        bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    size_t remaining() const { return bytes_.size() - at_; }
    int32_t i32(const std::string &what) {
        need(4, what);
        int32_t v;
        std::memcpy(&v, bytes_.data() + at_, 4);
        at_ += 4;
        return v;
    }
    std::string str(size_t n, const std::string &what) {
        need(n, what);
        std::string s(bytes_.data() + at_, n);
        at_ += n;
        return s;
    }
    void floats(float *dst, size_t n, const std::string &what) {
        if (n > (bytes_.size() - at_) / 4) bad(what + ": " + std::to_string(n) + " values run past the end");
        std::memcpy(dst, bytes_.data() + at_, n * 4);
        at_ += n * 4;
    }
    [[noreturn]] void bad(const std::string &why) const {
        fail(KTQ_ERR_FORMAT, path_ + ": not a GGUF or legacy imatrix file: " + why);
    }

private:
    void need(size_t n, const std::string &what) {
        if (n > bytes_.size() - at_) bad(what + " runs past the end of the file");
    }
    std::string path_;
    std::vector<char> bytes_;
    size_t at_ = 0;
};

void load_legacy(Imatrix &m) {
    LegacyReader r(m.path);
    const int32_t n_entries = r.i32("entry count");
    if (n_entries < 1) r.bad("entry count " + std::to_string(n_entries));
    for (int32_t i = 0; i < n_entries; ++i) {
        const std::string at = "entry " + std::to_string(i);
        const int32_t len = r.i32(at + " name length");
        if (len < 0) r.bad(at + " name length " + std::to_string(len));
        // llama.cpp reads the name as a C string: it ends at the first NUL.
        std::string name = r.str(static_cast<size_t>(len), at + " name");
        name = name.substr(0, name.find('\0'));
        const int32_t ncall = r.i32(at + " ('" + name + "') call count");
        const int32_t nval = r.i32(at + " ('" + name + "') value count");
        if (nval < 1 || static_cast<size_t>(nval) > r.remaining() / 4)
            r.bad(at + " ('" + name + "') value count " + std::to_string(nval) + " (" + std::to_string(r.remaining()) +
                  " bytes left)");
        std::vector<float> sums(static_cast<size_t>(nval));
        r.floats(sums.data(), sums.size(), at + " ('" + name + "')");
        auto e = std::make_shared<std::vector<float>>(sums.size());
        for (size_t k = 0; k < sums.size(); ++k)
            (*e)[k] = ncall > 0 ? sums[k] / static_cast<float>(static_cast<int64_t>(ncall)) : sums[k];
        check_finite(m, name, *e);
        m.entries[name] = std::move(e);
    }
    // Optional, and ignored when cut short as llama.cpp ignores it: chunk count and dataset name.
    if (r.remaining() >= 4) {
        m.chunk_count = r.i32("chunk count");
        if (r.remaining() >= 4) {
            const int32_t len = r.i32("dataset name length");
            if (len > 0 && static_cast<size_t>(len) <= r.remaining()) {
                std::string ds = r.str(static_cast<size_t>(len), "dataset name");
                m.datasets.push_back(ds.substr(0, ds.find('\0')));
            }
        }
    }
}

}  // namespace

Imatrix Imatrix::load(const std::string &path) {
    Imatrix m;
    m.path = path;
    char magic[4] = {};
    {
        std::ifstream in(path, std::ios::binary);
        if (!in) fail(KTQ_ERR_NOT_FOUND, path + ": cannot open the imatrix file");
        in.read(magic, 4);
    }
    if (std::memcmp(magic, "GGUF", 4) == 0) {
        load_gguf(m);
    } else {
        m.legacy = true;
        load_legacy(m);
    }
    return m;
}

}  // namespace ktq
