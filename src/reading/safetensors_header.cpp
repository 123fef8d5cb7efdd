#include "reading/safetensors_header.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "ktq/model.h"
#include "reading/dtype.h"
#include "runtime/error.h"

namespace ktq {

namespace {

constexpr size_t kMaxDims = KTQ_MAX_DIMS;

[[noreturn]] void bad(const std::string &file, const std::string &what) {
    fail(KTQ_ERR_FORMAT, file + ": " + what);
}

[[noreturn]] void bad_tensor(const std::string &file, const std::string &tensor, const std::string &what) {
    fail(KTQ_ERR_FORMAT, file + ": tensor '" + tensor + "': " + what);
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_mul_overflow(a, b, out);
}

}  // namespace

uint64_t TensorEntry::numel() const {
    uint64_t n = 1;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    return n;
}

namespace {

void parse_header_json(SafetensorsHeader &out, const char *text, size_t len, uint64_t data_len,
                       const std::string &display) {
    auto &tensors = out.tensors;
    auto &metadata = out.metadata;
    using nlohmann::json;
    // Duplicate keys are legal JSON but ambiguous for tensors: catch them
    // while parsing (nlohmann would silently keep the last one).
    std::set<std::string> seen;
    std::string duplicate;
    json::parser_callback_t track_keys = [&](int depth, json::parse_event_t event, json &parsed) {
        if (event == json::parse_event_t::key && depth == 1) {
            std::string key = parsed.get<std::string>();
            if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
        }
        return true;
    };
    json header;
    try {
        header = json::parse(text, text + len, track_keys);
    } catch (const json::exception &e) {
        bad(display, std::string("header is not valid JSON: ") + e.what());
    }
    if (!duplicate.empty()) bad_tensor(display, duplicate, "appears twice in the header");
    if (!header.is_object()) bad(display, "header is not a JSON object");

    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string &name = it.key();
        const json &v = it.value();
        if (name == "__metadata__") {
            if (!v.is_object()) bad(display, "__metadata__ is not an object");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string()) bad(display, "__metadata__ value '" + m.key() + "' is not a string");
                metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        if (name.empty()) bad(display, "a tensor has an empty name");
        if (!v.is_object()) bad_tensor(display, name, "entry is not an object");
        TensorEntry t;
        t.name = name;
        auto dt = v.find("dtype");
        if (dt == v.end() || !dt->is_string()) bad_tensor(display, name, "missing or non-string dtype");
        t.dtype = dtype_from_name(dt->get<std::string>());
        if (t.dtype == KTQ_DTYPE_UNKNOWN)
            fail(KTQ_ERR_UNSUPPORTED, display + ": tensor '" + name + "': unsupported dtype '" +
                                          dt->get<std::string>() + "'");
        auto sh = v.find("shape");
        if (sh == v.end() || !sh->is_array()) bad_tensor(display, name, "missing or non-array shape");
        if (sh->size() > kMaxDims)
            bad_tensor(display, name, "shape has " + std::to_string(sh->size()) + " dimensions (at most " +
                                           std::to_string(kMaxDims) + " supported)");
        uint64_t numel = 1;
        for (const json &d : *sh) {
            if (!d.is_number_unsigned())
                bad_tensor(display, name, "shape entry " + d.dump() + " is not a non-negative integer");
            uint64_t dim = d.get<uint64_t>();
            if (dim > static_cast<uint64_t>(INT64_MAX) || mul_overflows(numel, dim, &numel))
                bad_tensor(display, name, "shape " + sh->dump() + " overflows");
            t.shape.push_back(static_cast<int64_t>(dim));
        }
        auto off = v.find("data_offsets");
        if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
            !(*off)[1].is_number_unsigned())
            bad_tensor(display, name, "data_offsets must be two non-negative integers");
        t.begin = (*off)[0].get<uint64_t>();
        t.end = (*off)[1].get<uint64_t>();
        if (t.begin > t.end)
            bad_tensor(display, name, "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                                           "] are reversed");
        if (t.end > data_len)
            bad_tensor(display, name, "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                                           "] run past the end of the data (" + std::to_string(data_len) +
                                           " bytes; file truncated?)");
        uint64_t expected = 0;
        if (mul_overflows(numel, dtype_size(t.dtype), &expected) || expected != t.end - t.begin)
            bad_tensor(display, name, "byte length " + std::to_string(t.end - t.begin) + " does not match " +
                                           dtype_name(t.dtype) + " " + sh->dump() + " (" +
                                           std::to_string(expected) + " bytes)");
        tensors.push_back(std::move(t));
    }

    std::vector<const TensorEntry *> by_offset;
    for (const auto &t : tensors) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](const TensorEntry *a, const TensorEntry *b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    // Sorted by start: a tensor overlaps an earlier one exactly when it
    // starts before the furthest end seen so far (empty tensors occupy nothing).
    const TensorEntry *furthest = nullptr;
    for (const TensorEntry *cur : by_offset) {
        if (cur->nbytes() == 0) continue;
        if (furthest && cur->begin < furthest->end)
            bad_tensor(display, cur->name, "data overlaps tensor '" + furthest->name + "'");
        if (!furthest || cur->end > furthest->end) furthest = cur;
    }
    std::sort(tensors.begin(), tensors.end(),
              [](const TensorEntry &a, const TensorEntry &b) { return a.name < b.name; });
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t *file, uint64_t size, const std::string &display,
                                           uint64_t max_header_bytes) {
    if (size < 8)
        bad(display, "truncated: " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file[i];  // little endian
    if (header_len > max_header_bytes)
        bad(display, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                         std::to_string(max_header_bytes) + " bytes");
    if (header_len > size - 8)
        bad(display, "truncated: header length " + std::to_string(header_len) +
                         " runs past the end of the file (" + std::to_string(size) + " bytes)");
    SafetensorsHeader h;
    h.data_start = 8 + header_len;
    parse_header_json(h, reinterpret_cast<const char *>(file + 8), header_len, size - h.data_start, display);
    return h;
}

}  // namespace ktq
