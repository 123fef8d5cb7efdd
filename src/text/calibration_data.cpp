#include "text/calibration_data.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <numeric>

#include "runtime/error.h"

namespace ktq {

namespace {

uint64_t splitmix64(uint64_t &state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in [0, bound) by rejection (no modulo bias).
uint64_t bounded(uint64_t &state, uint64_t bound) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    for (;;) {
        const uint64_t v = splitmix64(state);
        if (v < limit) return v % bound;
    }
}

bool ends_with(const std::string &s, const std::string &tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::vector<uint64_t> sample_indices(uint64_t n, uint64_t k, uint64_t seed) {
    std::vector<uint64_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    if (k >= n) return idx;
    uint64_t state = seed;
    for (uint64_t i = 0; i < k; ++i) std::swap(idx[i], idx[i + bounded(state, n - i)]);
    idx.resize(k);
    std::sort(idx.begin(), idx.end());
    return idx;
}

uint64_t CalibrationData::tokens() const {
    uint64_t t = 0;
    for (const auto &s : samples) t += s.size();
    return t;
}

CalibrationData CalibrationData::from_file(const std::string &path, const BpeTokenizer &tokenizer,
                                           const CalibrationOptions &opts) {
    if (opts.num_samples < 1) fail(KTQ_ERR_INVALID_ARGUMENT, "num_samples must be at least 1");
    if (opts.max_sequence_length < 2) fail(KTQ_ERR_INVALID_ARGUMENT, "max_sequence_length must be at least 2");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(KTQ_ERR_NOT_FOUND, path + ": cannot open calibration dataset");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) fail(KTQ_ERR_IO, path + ": read failed");
    const size_t L = static_cast<size_t>(opts.max_sequence_length);
    std::vector<std::vector<int32_t>> candidates;
    if (ends_with(path, ".jsonl") || ends_with(path, ".json")) {
        size_t line_no = 0, pos = 0;
        while (pos < text.size()) {
            size_t end = text.find('\n', pos);
            if (end == std::string::npos) end = text.size();
            const std::string line = text.substr(pos, end - pos);
            pos = end + 1;
            ++line_no;
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            nlohmann::json rec;
            try {
                rec = nlohmann::json::parse(line);
            } catch (const nlohmann::json::exception &e) {
                fail(KTQ_ERR_FORMAT, path + ":" + std::to_string(line_no) + ": not a JSON record: " + e.what());
            }
            auto it = rec.is_object() ? rec.find(opts.text_field) : rec.end();
            if (it == rec.end() || !it->is_string())
                fail(KTQ_ERR_FORMAT, path + ":" + std::to_string(line_no) + ": record has no string field \"" +
                                         opts.text_field + "\"");
            std::vector<int32_t> ids;
            try {
                ids = tokenizer.encode(it->get<std::string>());
            } catch (const Error &e) {
                fail(e.status(), path + ":" + std::to_string(line_no) + ": " + e.what());
            }
            if (ids.size() > L) ids.resize(L);
            if (ids.size() >= 2) candidates.push_back(std::move(ids));
        }
    } else {
        std::vector<int32_t> ids;
        try {
            ids = tokenizer.encode(text);
        } catch (const Error &e) {
            fail(e.status(), path + ": " + e.what());
        }
        for (size_t i = 0; i + L <= ids.size(); i += L) candidates.emplace_back(ids.begin() + i, ids.begin() + i + L);
    }
    if (candidates.empty())
        fail(KTQ_ERR_INVALID_ARGUMENT, path + ": no calibration sample (plain text needs at least max_sequence_length = " +
                                           std::to_string(L) + " tokens)");
    CalibrationData d;
    d.candidates = candidates.size();
    for (uint64_t i : sample_indices(candidates.size(), static_cast<uint64_t>(opts.num_samples), opts.seed))
        d.samples.push_back(std::move(candidates[i]));
    return d;
}

}  // namespace ktq
