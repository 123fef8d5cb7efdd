#include "runtime/cpu_features.h"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace ktq {

namespace {

#if defined(__x86_64__) || defined(__i386__)
unsigned long long read_xcr0() {
    unsigned eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<unsigned long long>(edx) << 32) | eax;
}

CpuFeatures detect() {
    CpuFeatures f;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = (c >> 27) & 1;
    const unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    const bool os_avx = (xcr0 & 0x6) == 0x6;
    const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
    const bool os_amx = (xcr0 & 0x60000) == 0x60000;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.avx2 = os_avx && ((b >> 5) & 1);
        f.avx512f = os_avx512 && ((b >> 16) & 1);
        f.avx512_vnni = os_avx512 && ((c >> 11) & 1);
        f.amx_bf16 = os_amx && ((d >> 22) & 1);
        f.amx_tile = os_amx && ((d >> 24) & 1);
        f.amx_int8 = os_amx && ((d >> 25) & 1);
        unsigned max_sub = a;
        if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512_bf16 = os_avx512 && ((a >> 5) & 1);
    }
    unsigned max_ext = __get_cpuid_max(0x80000000, nullptr);
    if (max_ext >= 0x80000004) {
        char brand[49] = {0};
        for (unsigned i = 0; i < 3; ++i) {
            __get_cpuid(0x80000002 + i, &a, &b, &c, &d);
            std::memcpy(brand + 16 * i, &a, 4);
            std::memcpy(brand + 16 * i + 4, &b, 4);
            std::memcpy(brand + 16 * i + 8, &c, 4);
            std::memcpy(brand + 16 * i + 12, &d, 4);
        }
        f.model = brand;
        auto start = f.model.find_first_not_of(' ');
        f.model = start == std::string::npos ? "" : f.model.substr(start);
    }
    return f;
}
#else
CpuFeatures detect() { return CpuFeatures{}; }
#endif

}  // namespace

const CpuFeatures &CpuFeatures::get() {
    static const CpuFeatures features = detect();
    return features;
}

}  // namespace ktq
