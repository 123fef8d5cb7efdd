// AMX proof: multiplies activations by ktq's packed kt-kernel weights with
// the AMX tile instructions kt-kernel's kernels use (tileloadd + tdpbssd,
// 16x64-byte tiles, 64-byte stride) and checks the int32 results exactly
// against a layout-free reference: the same per-row quantization rules
// applied to the plain [n, k] matrix and multiplied element by element. Any
// mistake in tile order, VNNI interleave, nibble placement or block offsets
// changes the sums. Also prints the error of the whole quantized matmul
// against the BF16 matmul.
//
// Runs on a CPU with AMX (Sapphire Rapids and later); elsewhere it says so
// and exits 77 (the automake "skipped" code).
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "quant/kt_amx.h"
#include "runtime/cpu_features.h"

using ktq::kt_amx::Method;

namespace {

constexpr uint64_t kM = 16;  // activation rows per tile

struct TileConfig {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

bool enable_amx() {
    // Linux: the process must ask for the AMX tile data state first.
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

float bf16(uint16_t v) {
    uint32_t b = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}
uint16_t to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

// Layout-free reference: the documented per-row rules on the plain matrix.
// Codes are what the kernel multiplies: q for INT8, 16 * v for INT4.
void reference_codes(Method m, const std::vector<uint16_t> &w, uint64_t n, uint64_t k, std::vector<int8_t> &codes,
                     std::vector<float> &scales) {
    codes.assign(n * k, 0);
    scales.assign(n, 0);
    for (uint64_t r = 0; r < n; ++r) {
        float amax = 0;
        for (uint64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(bf16(w[r * k + c])));
        const float d = m == Method::Int8 ? amax * (1.0f / 127.0f)
                                          : static_cast<float>(static_cast<double>(amax) / 112.0);
        const float id = d == 0 ? 0 : 1.0f / d;
        scales[r] = d;
        for (uint64_t c = 0; c < k; ++c) {
            int q = static_cast<int>(std::nearbyint(bf16(w[r * k + c]) * id));
            q = std::min(127, std::max(-128, q));
            if (m == Method::Int4) q = (q < 0 ? -1 : 1) * ((std::abs(q) + 8) >> 4) * 16;
            codes[r * k + c] = static_cast<int8_t>(q);
        }
    }
}

__attribute__((target("amx-tile,amx-int8"))) void amx_matmul(Method m, const uint8_t *packed, uint64_t n,
                                                              uint64_t k, const int8_t *act, int32_t *out) {
    TileConfig cfg;
    for (int t = 0; t < 3; ++t) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    const uint64_t n_block = m == Method::Int8 ? 64 : 128, k_step = m == Method::Int8 ? 64 : 128, k_block = 3584;
    alignas(64) int8_t lo[1024], hi[1024];
    alignas(64) int32_t c[16 * 16];
    for (uint64_t n0 = 0; n0 < n; n0 += 16) {
        const uint64_t nb = n0 / n_block * n_block, nbs = std::min(n_block, n - nb);
        const uint64_t s = (n0 - nb) / 32 * 32, half = (n0 - nb - s) / 16;
        _tile_zero(0);
        for (uint64_t kb = 0; kb < k; kb += k_block) {
            const uint64_t kbs = std::min(k_block, k - kb);
            for (uint64_t t = 0; t < kbs; t += k_step) {
                const uint64_t element = nb * k + kb * nbs + s * kbs + t * 32;
                if (m == Method::Int8) {
                    _tile_loadd(1, act + kb + t, static_cast<long>(k));
                    _tile_loadd(2, packed + element + half * 1024, 64);
                    _tile_dpbssd(0, 1, 2);
                } else {
                    // Each byte holds column c (low nibble) and c + 64 (high
                    // nibble); the kernel widens both to int8 as 16 * v.
                    const uint8_t *b = packed + element / 2 + half * 1024;
                    for (int i = 0; i < 1024; ++i) {
                        lo[i] = static_cast<int8_t>(b[i] << 4);
                        hi[i] = static_cast<int8_t>(b[i] & 0xF0);
                    }
                    _tile_loadd(1, act + kb + t, static_cast<long>(k));
                    _tile_loadd(2, lo, 64);
                    _tile_dpbssd(0, 1, 2);
                    _tile_loadd(1, act + kb + t + 64, static_cast<long>(k));
                    _tile_loadd(2, hi, 64);
                    _tile_dpbssd(0, 1, 2);
                }
            }
        }
        _tile_stored(0, c, 64);
        for (uint64_t r = 0; r < kM; ++r)
            for (uint64_t j = 0; j < 16; ++j) out[r * n + n0 + j] = c[r * 16 + j];
    }
    _tile_release();
}

bool check(Method m, uint64_t n, uint64_t k, std::mt19937 &rng) {
    std::normal_distribution<float> wdist(0.0f, 0.02f), xdist(0.0f, 1.0f);
    std::vector<uint16_t> w(n * k), x(kM * k);
    for (auto &v : w) v = to_bf16(wdist(rng));
    for (uint64_t r = 0; r < n; r += 7) w[r * k + (r * 13) % k] = to_bf16(0.5f);  // outliers
    for (uint64_t c = 0; c < k; ++c) w[3 * k + c] = 0;                              // an all-zero row
    for (auto &v : x) v = to_bf16(xdist(rng));

    std::vector<uint8_t> packed(ktq::kt_amx::packed_bytes(m, n, k));
    std::vector<float> scales(n);
    ktq::kt_amx::quantize_pack(m, w.data(), n, k, k, packed.data(), scales.data());

    // Activations: per-row symmetric int8.
    std::vector<int8_t> a(kM * k);
    std::vector<float> da(kM);
    for (uint64_t r = 0; r < kM; ++r) {
        float amax = 0;
        for (uint64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(bf16(x[r * k + c])));
        da[r] = amax / 127.0f;
        for (uint64_t c = 0; c < k; ++c) a[r * k + c] = static_cast<int8_t>(std::nearbyint(bf16(x[r * k + c]) / da[r]));
    }
    std::vector<int32_t> got(kM * n);
    amx_matmul(m, packed.data(), n, k, a.data(), got.data());

    std::vector<int8_t> codes;
    std::vector<float> ref_scales;
    reference_codes(m, w, n, k, codes, ref_scales);
    uint64_t mismatches = 0, scale_mismatches = 0;
    double err2 = 0, ref2 = 0;
    for (uint64_t j = 0; j < n; ++j)
        if (std::memcmp(&scales[j], &ref_scales[j], 4) != 0) ++scale_mismatches;
    for (uint64_t r = 0; r < kM; ++r)
        for (uint64_t j = 0; j < n; ++j) {
            int64_t want = 0;
            double exact = 0;
            for (uint64_t c = 0; c < k; ++c) {
                want += static_cast<int32_t>(a[r * k + c]) * codes[j * k + c];
                exact += static_cast<double>(bf16(x[r * k + c])) * bf16(w[j * k + c]);
            }
            if (want != got[r * n + j]) ++mismatches;
            const double y = static_cast<double>(got[r * n + j]) * da[r] * scales[j];
            err2 += (y - exact) * (y - exact);
            ref2 += exact * exact;
        }
    std::printf("%s [n=%llu, k=%llu] x %llu rows: %llu/%llu int32 sums differ from the reference, %llu scales differ; "
                "relative error of the quantized matmul vs BF16: %.4f\n",
                ktq::kt_amx::method_prefix(m), static_cast<unsigned long long>(n), static_cast<unsigned long long>(k),
                static_cast<unsigned long long>(kM), static_cast<unsigned long long>(mismatches),
                static_cast<unsigned long long>(kM * n), static_cast<unsigned long long>(scale_mismatches),
                std::sqrt(err2 / ref2));
    return mismatches == 0 && scale_mismatches == 0;
}

}  // namespace

int main() {
    const auto &cpu = ktq::CpuFeatures::get();
    if (!cpu.amx_tile || !cpu.amx_int8) {
        std::printf("skipped: this CPU (%s) has no AMX-INT8\n", cpu.model.c_str());
        return 77;
    }
    if (!enable_amx()) {
        std::printf("skipped: the kernel refused AMX tile state (arch_prctl)\n");
        return 77;
    }
    std::printf("CPU: %s\n", cpu.model.c_str());
    std::mt19937 rng(42);
    bool ok = true;
    // DeepSeek-V3 gate/up part (2 NUMA parts) and down part, a Qwen3-MoE
    // part, and a tiny-model shape; both methods.
    const uint64_t shapes[][2] = {{1024, 7168}, {7168, 1024}, {384, 2048}, {128, 256}};
    for (Method m : {Method::Int8, Method::Int4})
        for (const auto &s : shapes) ok = check(m, s[0], s[1], rng) && ok;
    std::printf(ok ? "AMX check passed\n" : "AMX check FAILED\n");
    return ok ? 0 : 1;
}
