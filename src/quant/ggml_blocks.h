// ggml block types: each quantizer and dequantizer written once, following
// the arithmetic of ggml's reference (non-imatrix) path - and, for the types
// that have one, of its importance-weighted path - so that the bytes are
// identical: scales rounded to FP16 nearest-even, codes by truncating x*id
// plus an offset (Q4/Q5) or rounding half away from zero (Q8_0).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ktq/quant.h"

namespace ktq {

struct GgmlTypeTraits {
    ktq_ggml_type type;
    const char *name;
    size_t block_size;  // weights per block
    size_t type_size;   // bytes per block
    void (*quantize)(uint8_t *dst, const float *src, size_t blocks);
    void (*dequantize)(float *dst, const uint8_t *src, size_t blocks);
    // One row of n_per_row weights quantized with per-column importance (an
    // imatrix's n_per_row values), as llama-quantize does with an imatrix;
    // nullptr where ggml ignores importance (F32, F16, BF16, Q8_0).
    void (*quantize_importance)(uint8_t *dst, const float *row, size_t n_per_row, const float *importance) = nullptr;
};

// nullptr for types not implemented.
const GgmlTypeTraits *ggml_traits(ktq_ggml_type type);

// v [n] (n a multiple of the block size) replaced by what its blocks of
// `type` dequantize to: the values a reader of the GGUF computes with.
void ggml_round_trip(const GgmlTypeTraits &type, float *v, size_t n);

uint16_t f32_to_f16(float f);  // IEEE binary16, round to nearest even

}  // namespace ktq
