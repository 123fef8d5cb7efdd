// compressed-tensors RTN on a CUDA device: the GPU twin of
// ct::quantize_rows (same signature, same bytes), built from the shared
// per-group arithmetic in quant/ct_rtn_math.h. Without CUDA it throws
// KTQ_ERR_UNSUPPORTED. tests/unit/test_ct_rtn.cpp compares both paths.
#pragma once

#include <cstdint>

#include "quant/ct_rtn.h"

namespace ktq {

// Host buffers in and out; the device work (copies, two kernels) happens on
// the calling thread's own stream, so several threads can use it at once.
// `w` holds floats, or, with `w_is_bf16`, raw BF16 bits (half the bytes to
// copy; only for s.dtype == BF16).
uint64_t cuda_ct_quantize_rows(const ct::Scheme &s, const void *w, bool w_is_bf16, uint64_t rows, uint64_t cols,
                               uint32_t *packed, void *scales, int8_t *zp);

}  // namespace ktq
