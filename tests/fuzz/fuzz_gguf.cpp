// libFuzzer target: a GGUF file opened by GgufFile (header, key-values,
// tensor infos) and every tensor's rows read and dequantized. Whatever the
// bytes, the reader must fail with a ktq::Error or read inside the file.
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "reading/gguf_file.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const std::string path = "/tmp/ktq-fuzz-gguf-" + std::to_string(getpid()) + ".gguf";
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char *>(data), static_cast<std::streamsize>(size));
    }
    try {
        ktq::GgufFile g(path);
        g.get_string("general.architecture", "");
        g.get_int("general.alignment", 32);
        for (const auto &[name, t] : g.tensors()) {
            // At most 64 rows each: the point is the bounds, not the bytes.
            const uint64_t rows = t.rows() < 64 ? t.rows() : 64;
            std::vector<float> out(static_cast<size_t>(rows * t.ne[0]));
            g.read_rows(t, 0, rows, out.data());
        }
    } catch (const ktq::Error &) {
    }
    return 0;
}
