// Element types of safetensors and the scalar conversions between them.
// Every conversion into BF16 rounds to nearest, ties to even (what torch,
// numpy/ml_dtypes and safetensors' readers do), and keeps NaN a NaN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "ktq/common.h"
#include "runtime/half_float.h"

namespace ktq {

// Safetensors dtype string ("BF16") -> enum; KTQ_DTYPE_UNKNOWN if not known.
ktq_dtype dtype_from_name(const std::string &name);
const char *dtype_name(ktq_dtype dtype);
size_t dtype_size(ktq_dtype dtype);
bool dtype_is_float(ktq_dtype dtype);

inline float bits_to_f32(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
inline uint32_t f32_to_bits(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return bits;
}

inline float bf16_to_f32(uint16_t h) { return half::from_bf16(h); }

inline uint16_t f32_to_bf16(float f) {
    return half::bf16_bits(f);
}

float f16_to_f32(uint16_t h);
// E4M3 is the "fn" variant of the OCP FP8 spec (no infinities, 0x7f/0xff NaN),
// the one safetensors calls F8_E4M3 and DeepSeek-V3 ships.
float f8e4m3_to_f32(uint8_t v);
float f8e5m2_to_f32(uint8_t v);

// Converts `count` elements of `src` (dtype `from`, a floating type) to F32.
void convert_to_f32(float *dst, const void *src, ktq_dtype from, size_t count);
// Converts `count` elements to BF16; BF16 sources are copied bit for bit.
void convert_to_bf16(uint16_t *dst, const void *src, ktq_dtype from, size_t count);

// Number of NaN/Inf values among `count` elements of `data` (F32 or BF16);
// `*first` receives the index of the first one (when there is one).
size_t count_non_finite(const void *data, ktq_dtype dtype, size_t count, size_t *first);

// One row of block-scaled FP8 (`fp8` is F8_E4M3 or F8_E5M2) into F32 or BF16:
// dst[c] = value(src[c]) * scales[c / block_cols], multiplied in float32.
void dequant_fp8_row(void *dst, ktq_dtype out, const uint8_t *src, ktq_dtype fp8, size_t cols,
                     const float *scales, size_t block_cols);

}  // namespace ktq
