// CpuFeatures - the x86 instruction sets the AMX/AVX-512 engines care about,
// read with CPUID and checked against what the OS enabled (XCR0), since AMX
// and AVX-512 state must be enabled by the kernel to be usable.
#pragma once

#include <string>

namespace ktq {

struct CpuFeatures {
    bool avx2 = false;
    bool avx512f = false;
    bool avx512_vnni = false;
    bool avx512_bf16 = false;
    bool amx_tile = false;
    bool amx_int8 = false;
    bool amx_bf16 = false;
    std::string model;  // brand string

    static const CpuFeatures &get();
};

}  // namespace ktq
