#include "quant/kt_amx.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime/cpu_features.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define KTQ_HAVE_X86 1
#endif

namespace ktq::kt_amx {

namespace {

// Tile geometry of kt-kernel's GemmKernel224Int8 / GemmKernel224Int4.
constexpr uint64_t kKBlock = 3584;  // columns per K block (both methods)
constexpr uint64_t kNStep = 32;     // rows per tile strip
struct Geometry {
    uint64_t n_block;  // rows per N block
    uint64_t k_step;   // columns per tile step
};
Geometry geometry(Method m) { return m == Method::Int8 ? Geometry{64, 64} : Geometry{128, 128}; }

// 1/127 rounded to float: the 0.7.2 binary (built with -ffast-math)
// multiplies by this constant instead of dividing by 127.
constexpr float kInv127 = 1.0f / 127.0f;

std::atomic<bool> g_force_portable{false};

// kt-kernel's threads run with MXCSR FTZ|DAZ (its -ffast-math build), seen
// in 0.7.2's output: subnormal inputs count as zero and a scale that would be
// subnormal becomes 0, zeroing the row. Both are reproduced here.
float row_scale(Method m, float amax) {
    float d = m == Method::Int8 ? amax * kInv127
                                // INT4: a double constant 1/112 (112 = 7 x 16), product rounded to float.
                                : static_cast<float>(static_cast<double>(amax) * (1.0 / 112.0));
    return d < std::numeric_limits<float>::min() ? 0.0f : d;  // FTZ
}

inline float bf16_to_f32(uint16_t v) {
    if ((v & 0x7F80u) == 0) v &= 0x8000u;  // DAZ: a subnormal is a (signed) zero
    uint32_t bits = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// x * id rounded half to even and saturated to int8, as cvtps2dq + a
// saturating narrow do it (NaN becomes the "integer indefinite" -> -128).
inline int8_t to_code(float x, float id) {
    const float p = x * id;
    if (std::isnan(p)) return -128;
    const float r = std::nearbyint(p);  // default rounding mode: half to even
    if (r >= 127.0f) return 127;
    if (r <= -128.0f) return -128;
    return static_cast<int8_t>(r);
}

// The second rounding of INT4: q8 / 16 rounded half away from zero.
inline int8_t to_int4(int8_t q) {
    const int a = std::abs(static_cast<int>(q));
    const int v = (a + 8) >> 4;
    return static_cast<int8_t>(q < 0 ? -v : v);
}

// Codes as the kernel's nibbles or bytes hold them: INT8 q, INT4 v (-8..7).
bool quantize_row_portable(Method m, const uint16_t *src, uint64_t k, int8_t *codes, float *scale) {
    float amax = 0.0f;
    bool non_finite = false;
    for (uint64_t c = 0; c < k; ++c) {
        amax = std::max(amax, std::fabs(bf16_to_f32(src[c])));
        non_finite |= (src[c] & 0x7F80u) == 0x7F80u;
    }
    const float d = row_scale(m, amax);
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    if (m == Method::Int8)
        for (uint64_t c = 0; c < k; ++c) codes[c] = to_code(bf16_to_f32(src[c]), id);
    else
        for (uint64_t c = 0; c < k; ++c) codes[c] = to_int4(to_code(bf16_to_f32(src[c]), id));
    *scale = d;
    return non_finite;
}

#ifdef KTQ_HAVE_X86
// gcc 12's AVX-512 headers start vectors from _mm512_undefined_*(), which its
// own -Wuninitialized reports when inlined into a target("avx512f") function.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// 16 BF16 words widened to float, DAZ as kt-kernel runs: words with a zero
// exponent (subnormals) become 0.
__attribute__((target("avx512f,avx512bw"), always_inline)) inline __m512 load16_daz(const uint16_t *p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
    w = _mm512_maskz_mov_epi32(_mm512_test_epi32_mask(w, _mm512_set1_epi32(0x7F80)), w);
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

__attribute__((target("avx512f,avx512bw"))) bool quantize_row_avx512(Method m, const uint16_t *src, uint64_t k,
                                                                      int8_t *codes, float *scale) {
    // k is a multiple of 64 (checked by shape_problem).
    const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    const __m512i exponent = _mm512_set1_epi32(0x7F800000);
    __m512 vmax = _mm512_setzero_ps();
    __mmask16 non_finite = 0;  // an exponent of all ones: Inf or NaN
    for (uint64_t c = 0; c < k; c += 16) {
        __m512 x = load16_daz(src + c);
        const __m512i bits = _mm512_and_si512(_mm512_castps_si512(x), exponent);
        non_finite |= _mm512_cmpeq_epi32_mask(bits, exponent);
        vmax = _mm512_max_ps(vmax, _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_castps_si512(abs_mask))));
    }
    const float amax = _mm512_reduce_max_ps(vmax);
    const float d = row_scale(m, amax);
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127), eight = _mm512_set1_epi32(8);
    for (uint64_t c = 0; c < k; c += 16) {
        __m512 x = load16_daz(src + c);
        __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(x, vid));  // MXCSR default: half to even
        if (m == Method::Int4) {
            // The second rounding, as to_int4(): sign(q) * ((|q| + 8) >> 4) of the saturated q.
            q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
            __m512i v = _mm512_srli_epi32(_mm512_add_epi32(_mm512_abs_epi32(q), eight), 4);
            q = _mm512_mask_sub_epi32(v, _mm512_cmplt_epi32_mask(q, _mm512_setzero_si512()), _mm512_setzero_si512(), v);
        }
        _mm_storeu_si128(reinterpret_cast<__m128i *>(codes + c), _mm512_cvtsepi32_epi8(q));
    }
    *scale = d;
    return non_finite != 0;
}
#pragma GCC diagnostic pop
#endif

bool avx512_usable() {
#ifdef KTQ_HAVE_X86
    static const bool ok = CpuFeatures::get().avx512f && __builtin_cpu_supports("avx512bw");
    return ok && !g_force_portable.load(std::memory_order_relaxed);
#else
    return false;
#endif
}

// Element offset of the tile holding (row r, column c) and the position of
// the row inside its 32-row strip; see docs/formats/kt-kernel.md section 2.
struct TileRow {
    uint64_t nb, nbs, s;  // N block start, its rows, strip start inside it
    uint64_t half, r16;   // which 16-row half, row inside that half
};
TileRow tile_row(const Geometry &g, uint64_t n, uint64_t r) {
    TileRow t;
    t.nb = r / g.n_block * g.n_block;
    t.nbs = std::min(g.n_block, n - t.nb);
    const uint64_t in_block = r - t.nb;
    t.s = in_block / kNStep * kNStep;
    const uint64_t i = in_block - t.s;
    t.half = i / 16;
    t.r16 = i % 16;
    return t;
}
inline uint64_t tile_element_offset(const TileRow &tr, uint64_t k, uint64_t kb, uint64_t kbs, uint64_t t) {
    return tr.nb * k + kb * tr.nbs + tr.s * kbs + t * kNStep;
}

// Places one row's codes: each 64-byte line of a tile holds 4 consecutive K
// bytes of each of 16 rows (VNNI order), two such 1 KiB halves per tile.
void place_row(Method m, const Geometry &g, uint64_t n, uint64_t k, uint64_t r, const int8_t *codes,
               uint8_t *packed) {
    const TileRow tr = tile_row(g, n, r);
    const uint64_t row_in_tile = tr.half * 1024 + tr.r16 * 4;
    for (uint64_t kb = 0; kb < k; kb += kKBlock) {
        const uint64_t kbs = std::min(kKBlock, k - kb);
        for (uint64_t t = 0; t < kbs; t += g.k_step) {
            const int8_t *q = codes + kb + t;
            if (m == Method::Int8) {
                uint8_t *tile = packed + tile_element_offset(tr, k, kb, kbs, t) + row_in_tile;
                for (uint64_t j4 = 0; j4 < 16; ++j4) std::memcpy(tile + j4 * 64, q + j4 * 4, 4);
            } else {
                // INT4 (codes already 4-bit): column c < 64 of the step ->
                // low nibble, c + 64 -> high nibble of the same byte.
                uint8_t *tile = packed + tile_element_offset(tr, k, kb, kbs, t) / 2 + row_in_tile;
                uint8_t b[64];
                for (int j = 0; j < 64; ++j)
                    b[j] = static_cast<uint8_t>((static_cast<uint8_t>(q[j]) & 0x0F) | (static_cast<uint8_t>(q[64 + j]) << 4));
                for (uint64_t j4 = 0; j4 < 16; ++j4) std::memcpy(tile + j4 * 64, b + j4 * 4, 4);
            }
        }
    }
}

}  // namespace

const char *method_prefix(Method m) { return m == Method::Int8 ? "INT8" : "INT4"; }

const char *proj_name(int proj) { return proj == 0 ? "gate" : proj == 1 ? "up" : "down"; }

std::string part_name(int layer, int proj, int expert, int part) {
    return "blk." + std::to_string(layer) + ".ffn_" + proj_name(proj) + "_exps." + std::to_string(expert) + ".numa." +
           std::to_string(part);
}

std::string loose_file(Method m, int layer, int proj, int expert, int part, uint64_t bytes, bool is_scale) {
    return "_layer_" + std::to_string(layer) + "/_numa_" + std::to_string(part) + "/" + method_prefix(m) + "_" +
           proj_name(proj) + "_" + std::to_string(expert) + "_" + std::to_string(bytes) +
           (is_scale ? "Byte_scale_.kt" : "Byte_quant_.kt");
}

uint64_t packed_bytes(Method m, uint64_t n, uint64_t k) { return m == Method::Int8 ? n * k : n * k / 2; }

std::string shape_problem(Method m, uint64_t n, uint64_t k) {
    const uint64_t k_step = geometry(m).k_step;
    if (n == 0 || k == 0) return "empty matrix";
    if (n % kNStep) return std::to_string(n) + " output rows are not a multiple of " + std::to_string(kNStep);
    if (k % k_step)
        return std::to_string(k) + " input columns are not a multiple of " + std::to_string(k_step) + " (" +
               method_prefix(m) + " tile step)";
    return "";
}

bool quantize_pack(Method m, const uint16_t *src, uint64_t n, uint64_t k, uint64_t ld, uint8_t *packed,
                   float *scales) {
    bool non_finite = false;
    const Geometry g = geometry(m);
    thread_local std::vector<int8_t> codes;
    codes.resize(k);
    const bool vec = avx512_usable();
    for (uint64_t r = 0; r < n; ++r) {
#ifdef KTQ_HAVE_X86
        if (vec)
            non_finite |= quantize_row_avx512(m, src + r * ld, k, codes.data(), &scales[r]);
        else
#endif
            non_finite |= quantize_row_portable(m, src + r * ld, k, codes.data(), &scales[r]);
        place_row(m, g, n, k, r, codes.data(), packed);
    }
    return non_finite;
}

void unpack_dequantize(Method m, const uint8_t *packed, const float *scales, uint64_t n, uint64_t k, float *dst) {
    const Geometry g = geometry(m);
    for (uint64_t r = 0; r < n; ++r) {
        const TileRow tr = tile_row(g, n, r);
        const uint64_t row_in_tile = tr.half * 1024 + tr.r16 * 4;
        for (uint64_t c = 0; c < k; ++c) {
            const uint64_t kb = c / kKBlock * kKBlock, kbs = std::min(kKBlock, k - kb);
            const uint64_t t = (c - kb) / g.k_step * g.k_step, j = c - kb - t;
            int v;
            if (m == Method::Int8) {
                const uint64_t at = tile_element_offset(tr, k, kb, kbs, t) + row_in_tile + j / 4 * 64 + j % 4;
                v = static_cast<int8_t>(packed[at]);
            } else {
                const uint64_t jj = j % 64;
                const uint64_t at = tile_element_offset(tr, k, kb, kbs, t) / 2 + row_in_tile + jj / 4 * 64 + jj % 4;
                const int nib = j < 64 ? (packed[at] & 0x0F) : (packed[at] >> 4);
                v = (nib >= 8 ? nib - 16 : nib) * 16;
            }
            dst[r * k + c] = static_cast<float>(v) * scales[r];
        }
    }
}

void set_force_portable(bool portable) { g_force_portable.store(portable, std::memory_order_relaxed); }
bool uses_avx512() { return avx512_usable(); }

}  // namespace ktq::kt_amx
