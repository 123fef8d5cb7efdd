/*
 * ktq/compressed_tensors.h - compressed-tensors integer weight quantization
 * of single matrices, for a caller's own buffers (in-situ quantization in a
 * Rust / Go / Java pipeline).
 *
 * The same code as the KTQ_FORMAT_COMPRESSED_TENSORS writer: scales from a
 * min-max (or MSE) observer, round-to-nearest codes and the "pack-quantized" int32
 * packing, byte-identical to llm-compressor / compressed-tensors (see
 * docs/formats/compressed-tensors.md). For a weight [rows, cols]
 * (out features x in features) with G = cols / group_size groups per row
 * (G = 1 per channel):
 *   packed       int32 [rows, ceil(cols * bits / 32)]   (weight_packed)
 *   scales       dtype [rows, G]                         (weight_scale)
 *   zero_points  int32 [ceil(rows * bits / 32), G]      (weight_zero_point,
 *                asymmetric schemes only)
 *
 * Thread-safety: every function is reentrant.
 */
#ifndef KTQ_COMPRESSED_TENSORS_H
#define KTQ_COMPRESSED_TENSORS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How codes are rounded. llm-compressor gives different bytes depending on
 * where it runs: on a GPU, compressed-tensors' Triton kernel computes
 * x / scale (+ zero point) in float32 and rounds that; on a CPU, eager torch
 * first rounds the quotient to the model's dtype (BF16), which moves about
 * 0.6 % of the int4 codes by one. ktq reproduces either, on either device. */
typedef enum ktq_ct_rounding {
    KTQ_CT_ROUND_FP32 = 0, /* as llm-compressor on a GPU (default; also the more accurate) */
    KTQ_CT_ROUND_DTYPE = 1 /* as llm-compressor on a CPU */
} ktq_ct_rounding;

/* How each group's scale and zero point are chosen (compressed-tensors'
 * "observer"). The codes, packing and file format are the same for both. */
typedef enum ktq_ct_observer {
    /* from the group's minimum and maximum (default; llm-compressor's
     * "minmax", byte-identical to it) */
    KTQ_CT_OBSERVER_MINMAX = 0,
    /* from the range, shrunk by 0-19 % in steps of 1 %, whose codes give the
     * smallest sum of |error|^2.4 over the group (llm-compressor's "mse"
     * observer with its defaults). Each group is searched on its own, over
     * all 20 steps, so the result does not depend on how weights are split
     * into calls, threads or devices; llm-compressor stops the search of a
     * whole tensor early and sums the errors in the model's dtype, so its
     * scales can differ. About 20 times the observer's work: for RTN that
     * is most of the run. */
    KTQ_CT_OBSERVER_MSE = 1
} ktq_ct_observer;

typedef struct ktq_ct_scheme {
    unsigned version;  /* KTQ_CT_SCHEME_VERSION */
    int num_bits;      /* 2..8 (default 4: W4A16; 8: W8A16) */
    int group_size;    /* weights per scale along a row (default 128); -1 = one per row */
    int symmetric;     /* default 1; 0 = with zero points */
    /* dtype of the weights passed in, of the scales, and of the arithmetic
     * (torch's, in that dtype): KTQ_DTYPE_BF16 (default), F16 or F32. */
    ktq_dtype dtype;
    ktq_ct_rounding rounding; /* default KTQ_CT_ROUND_FP32 */
    /* ---- version 2 ---- */
    ktq_ct_observer observer; /* default KTQ_CT_OBSERVER_MINMAX */
} ktq_ct_scheme;
#define KTQ_CT_SCHEME_VERSION 2
KTQ_API ktq_status ktq_ct_scheme_init(ktq_ct_scheme *scheme, unsigned version);

/* Element counts of the three outputs for a [rows, cols] weight
 * (zero_point_words is 0 for symmetric schemes). Fails with
 * KTQ_ERR_INVALID_ARGUMENT when cols is not a multiple of the group size. */
KTQ_API ktq_status ktq_ct_sizes(size_t *packed_words, size_t *scale_count, size_t *zero_point_words, uint64_t rows,
                                uint64_t cols, const ktq_ct_scheme *scheme, ktq_error **err);

/* Quantizes `weights` (rows x cols values of scheme->dtype: raw BF16/F16
 * bits as uint16, or float) into the caller's buffers, sized as
 * ktq_ct_sizes says (zero_points may be NULL for symmetric schemes). NaN or
 * infinite weights fail with KTQ_ERR_FORMAT. */
KTQ_API ktq_status ktq_ct_quantize(int32_t *packed, size_t packed_words, void *scales, size_t scale_count,
                                   int32_t *zero_points, size_t zero_point_words, const void *weights, uint64_t rows,
                                   uint64_t cols, const ktq_ct_scheme *scheme, ktq_error **err);

/* The inverse, as compressed-tensors' decompressor computes it:
 * (code - zero point) * scale in scheme->dtype, written to `weights`
 * (rows x cols values of that dtype). */
KTQ_API ktq_status ktq_ct_dequantize(void *weights, const int32_t *packed, size_t packed_words, const void *scales,
                                     size_t scale_count, const int32_t *zero_points, size_t zero_point_words,
                                     uint64_t rows, uint64_t cols, const ktq_ct_scheme *scheme, ktq_error **err);

#ifdef __cplusplus
}
#endif

#endif /* KTQ_COMPRESSED_TENSORS_H */
