// libFuzzer target: an importance-matrix file (GGUF or legacy .dat) loaded as
// llama-quantize would load it. Whatever the bytes, Imatrix::load must fail
// with a ktq::Error or return entries that are all finite.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "reading/imatrix_file.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const std::string path = "/tmp/ktq-fuzz-imatrix-" + std::to_string(getpid());
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char *>(data), static_cast<std::streamsize>(size));
    }
    try {
        const ktq::Imatrix m = ktq::Imatrix::load(path);
        for (const auto &[name, e] : m.entries)
            for (float v : *e)
                if (!std::isfinite(v)) std::abort();  // load() promised finite importance
    } catch (const ktq::Error &) {
    }
    return 0;
}
