// compressed-tensors integer weight quantization (round to nearest, the
// "GPU format" core): scales from a memoryless min-max observer, codes,
// and the pack-quantized int32 packing, exactly as llm-compressor 0.14 /
// compressed-tensors 0.19 compute them, so that the bytes are identical.
//
// The arithmetic is torch's in the model's dtype (BF16, F16 or F32): each
// operation is done in float32 and its result rounded to that dtype, as
// torch does for half-precision tensors on CPU and CUDA. The rules, per
// group of `group_size` weights of one row (docs/formats/compressed-tensors.md):
//   lo = min(min(x), 0), hi = max(max(x), 0)
//   symmetric:  scale = R(max(-lo, hi) / R((qmax - qmin) / 2)), zp = 0
//   asymmetric: scale = R(R(hi - lo) / (qmax - qmin)),
//               zp = rint(clamp(R(qmin - R(lo / scale)), qmin, qmax))
//   scale == 0 -> the dtype's machine epsilon (after zp was computed)
//   q = rint(clamp(R(R(x / scale) + zp), qmin, qmax))      rint: half to even
// where, for the codes only, R is the identity unless s.dtype_rounding: on a
// GPU llm-compressor computes x / scale + zp in float32 (compressed-tensors'
// Triton kernel), on a CPU in the model's dtype (eager torch).
// with R = round to the dtype (nearest even) and [qmin, qmax] = [-2^(b-1),
// 2^(b-1) - 1].
//
// With Observer::kMse the range [lo, hi] is first shrunk as
// math::mse_group_params describes.
//
// The per-group math is written once, in ct_rtn_math.h, for the host and
// for CUDA kernels.
#pragma once

#include <cstdint>
#include <string>

#include "ktq/common.h"

namespace ktq::ct {

// How a group's scale and zero point are chosen: from its minimum and maximum
// (llm-compressor's default "minmax"), or from the range, shrunk by up to
// 19 %, that minimises the group's rounding error ("mse"; ct_rtn_math.h).
enum class Observer { kMinMax, kMse };

struct Scheme {
    int bits = 4;          // 2..8
    int group_size = 128;  // > 0: groups along the input features; -1: one per output row (channel)
    bool symmetric = true;
    ktq_dtype dtype = KTQ_DTYPE_BF16;  // scales and arithmetic: the model's dtype (BF16, F16, F32)
    // Codes from x / scale rounded to `dtype` first (llm-compressor on a CPU,
    // eager torch) instead of in float32 (llm-compressor on a GPU, Triton).
    bool dtype_rounding = false;
    Observer observer = Observer::kMinMax;
};

// Empty when `s` is a scheme this library computes, otherwise why not.
std::string scheme_problem(const Scheme &s);
// Empty when a [rows, cols] weight can be quantized with `s` (cols divisible by
// the group size), otherwise why not.
std::string shape_problem(const Scheme &s, uint64_t rows, uint64_t cols);

uint64_t groups_per_row(const Scheme &s, uint64_t cols);
uint64_t packed_words_per_row(const Scheme &s, uint64_t cols);    // weight_packed [rows, this]
uint64_t zero_point_words(const Scheme &s, uint64_t rows);        // weight_zero_point [this, groups]
uint64_t scale_bytes(const Scheme &s, uint64_t rows, uint64_t cols);

// Quantizes rows [0, rows) of `w` (float values exactly representable in
// s.dtype, row-major [rows, cols]) into
//   packed: rows x packed_words_per_row int32 (LSB first, codes + 2^(b-1)),
//   scales: rows x groups in s.dtype (raw bits, 2 or 4 bytes each),
//   zp:     asymmetric only, the codes of rows x groups zero points as int8
//           (pack them with pack_zero_points; may be null when symmetric).
// Returns the number of NaN/Inf inputs (their outputs are meaningless).
uint64_t quantize_rows(const Scheme &s, const float *w, uint64_t rows, uint64_t cols, uint32_t *packed, void *scales,
                       int8_t *zp);

// What quantize_rows chooses for each group of rows [0, rows): scales and zero
// points [rows, groups] as floats (values of s.dtype; zero points integers, 0
// when symmetric), for quantizers that make their own codes (GPTQ). Returns
// the number of NaN/Inf inputs.
uint64_t group_params_rows(const Scheme &s, const float *w, uint64_t rows, uint64_t cols, float *scales, float *zps);

// Packs signed codes [rows, cols] (from another quantizer, e.g. GPTQ) into
// rows x packed_words_per_row int32, exactly as quantize_rows packs its own.
void pack_codes(const Scheme &s, const int8_t *codes, uint64_t rows, uint64_t cols, uint32_t *packed);
// Stores n float values (values of s.dtype) as raw s.dtype scales.
void store_scales(const Scheme &s, const float *values, uint64_t n, void *scales);

// Packs zero points [rows, groups] (int8 codes) along the rows, as
// compressed-tensors does: out is [zero_point_words(rows), groups] int32.
// `rows` must be a multiple of 32, or the tensor's last rows.
void pack_zero_points(const Scheme &s, const int8_t *zp, uint64_t rows, uint64_t groups, uint32_t *out);

// The inverse of pack_zero_points.
void unpack_zero_points(const Scheme &s, const uint32_t *packed, uint64_t rows, uint64_t groups, int8_t *zp);

// The inverse of quantize_rows, for `ktq compare` and tests: float weights
// from packed codes, scales (raw s.dtype bits) and zero-point codes (null
// when symmetric), as compressed-tensors' decompressor computes them
// ((q - zp) * scale, each step in s.dtype).
void dequantize_rows(const Scheme &s, const uint32_t *packed, const void *scales, const int8_t *zp, uint64_t rows,
                     uint64_t cols, float *out);

// Rounds float32 values to s.dtype in place (nearest even): how weights
// read in F32 reach the quantizer.
void round_to_dtype(ktq_dtype dtype, float *v, uint64_t n);

}  // namespace ktq::ct
