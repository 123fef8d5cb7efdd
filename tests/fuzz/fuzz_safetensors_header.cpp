// libFuzzer target: a whole safetensors file image. Any input must either
// parse into tensors whose byte ranges lie inside the data section, or be
// refused with ktq::Error; crashes, sanitizer reports and other exceptions
// are bugs.
#include <cstdint>
#include <cstdlib>

#include "reading/safetensors_header.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try {
        ktq::SafetensorsHeader h = ktq::parse_safetensors_header(data, size, "fuzz.safetensors", 1 << 20);
        const uint64_t data_len = size - h.data_start;
        for (const auto &t : h.tensors)
            if (t.begin > t.end || t.end > data_len) std::abort();  // must have been refused
    } catch (const ktq::Error &) {
    }
    return 0;
}
