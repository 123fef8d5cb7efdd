// The safetensors header: an 8-byte little-endian length, then a JSON object
// of tensor name -> {dtype, shape, data_offsets} (plus optional string
// __metadata__), then the data section. parse_safetensors_header() validates
// all of it against the file size before anyone trusts an offset: length
// limit, JSON shape, known dtypes, shape x dtype size == byte length (no
// overflow), offsets inside the data section, no overlaps, no duplicate names.
// Every error is KTQ_ERR_FORMAT (KTQ_ERR_UNSUPPORTED for unknown dtypes) with
// a message naming the file and the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ktq/common.h"

namespace ktq {

struct TensorEntry {
    std::string name;
    ktq_dtype dtype = KTQ_DTYPE_UNKNOWN;
    std::vector<int64_t> shape;
    uint64_t begin = 0;  // offsets into the data section (after the header)
    uint64_t end = 0;

    uint64_t nbytes() const { return end - begin; }
    uint64_t numel() const;
};

struct SafetensorsHeader {
    std::vector<TensorEntry> tensors;  // sorted by name
    std::map<std::string, std::string> metadata;
    uint64_t data_start = 0;           // file offset of the data section
};

// `file` holds the first `size` bytes of the file (all of it); `display`
// names the file in error messages.
SafetensorsHeader parse_safetensors_header(const uint8_t *file, uint64_t size, const std::string &display,
                                           uint64_t max_header_bytes);

}  // namespace ktq
