/*
 * ktq/quant.h - ggml block quantization of single tensors.
 *
 * One implementation per block type, shared by the GGUF exporter to come and
 * by any caller (e.g. a Candle pipeline quantizing its own tensors). Each
 * quantizer is bit-identical to ggml's reference (non-imatrix) quantizer,
 * checked in CI against golden vectors: gguf-py's for the legacy types,
 * ggml-quants.c's own quantize_row_*_ref for the K-quants (super-blocks of
 * 256 weights: Q2_K 84 bytes, Q3_K 110, Q4_K 144, Q5_K 176, Q6_K 210), and
 * with importance weights (ktq_quantize_rows) to ggml's imatrix path.
 *
 * Thread-safety: every function is reentrant.
 */
#ifndef KTQ_QUANT_H
#define KTQ_QUANT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ggml's type ids (the numbers GGUF files store). */
typedef enum ktq_ggml_type {
    KTQ_GGML_F32 = 0,
    KTQ_GGML_F16 = 1,
    KTQ_GGML_Q4_0 = 2,
    KTQ_GGML_Q4_1 = 3,
    KTQ_GGML_Q5_0 = 6,
    KTQ_GGML_Q5_1 = 7,
    KTQ_GGML_Q8_0 = 8,
    KTQ_GGML_Q2_K = 10,
    KTQ_GGML_Q3_K = 11,
    KTQ_GGML_Q4_K = 12,
    KTQ_GGML_Q5_K = 13,
    KTQ_GGML_Q6_K = 14,
    KTQ_GGML_BF16 = 30
} ktq_ggml_type;

/* "Q4_0", ... or "UNKNOWN". */
KTQ_API const char *ktq_ggml_type_name(ktq_ggml_type type);
/* Weights per block (1 for F32/F16/BF16, 32 for Q4_0...) and bytes per block;
 * 0 for types this library does not implement. */
KTQ_API size_t ktq_ggml_block_size(ktq_ggml_type type);
KTQ_API size_t ktq_ggml_type_size(ktq_ggml_type type);

/* Quantize `n` floats (a multiple of the block size) into `dst`, which must
 * hold n / block_size * type_size bytes. */
KTQ_API ktq_status ktq_quantize_tensor(void *dst, size_t dst_bytes, const float *src, size_t n, ktq_ggml_type type,
                                       ktq_error **err);
/* Quantize `rows` rows of `n_per_row` floats (a multiple of the block size)
 * with per-column importance `importance` (n_per_row values, e.g. an
 * imatrix's mean squared activations for this weight; for one expert of a
 * stacked tensor, that expert's slice), bit-identical to what ggml's
 * quantize_<type>(..., quant_weights) - llama-quantize with an imatrix -
 * writes. `importance` NULL is the reference path of ktq_quantize_tensor.
 * Types where ggml ignores importance (F32, F16, BF16, Q8_0) take the
 * reference path either way. `dst` holds rows * n_per_row / block_size *
 * type_size bytes. */
KTQ_API ktq_status ktq_quantize_rows(void *dst, size_t dst_bytes, const float *src, size_t rows, size_t n_per_row,
                                     const float *importance, ktq_ggml_type type, ktq_error **err);
/* The inverse: `n` floats out of `src` (n / block_size * type_size bytes). */
KTQ_API ktq_status ktq_dequantize_tensor(float *dst, size_t n, const void *src, size_t src_bytes, ktq_ggml_type type,
                                         ktq_error **err);

#ifdef __cplusplus
}
#endif

#endif /* KTQ_QUANT_H */
