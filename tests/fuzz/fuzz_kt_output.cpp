// libFuzzer target: a merged kt-kernel output (one safetensors file) read
// back by KtOutput, every part read and dequantized. Accepted parts must be
// consistent: packed size = what the method and shape need.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "reading/kt_output.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const std::string dir = [] {
        std::string d = "/tmp/ktq-fuzz-kt-" + std::to_string(getpid());
        ::mkdir(d.c_str(), 0700);
        return d;
    }();
    {
        std::ofstream out(dir + "/model-00001-of-00001.safetensors", std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char *>(data), static_cast<std::streamsize>(size));
    }
    try {
        ktq::KtOutput kt(dir);
        for (const auto &p : kt.parts()) {
            if (ktq::kt_amx::packed_bytes(p.method, p.rows, p.cols) != p.weight_bytes) std::abort();
            if (!ktq::kt_amx::shape_problem(p.method, p.rows, p.cols).empty()) std::abort();
            std::vector<float> w(p.rows * p.cols);
            kt.dequantize(p, w.data());
        }
    } catch (const ktq::Error &) {
    }
    return 0;
}
