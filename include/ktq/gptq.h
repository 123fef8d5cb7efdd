/*
 * ktq/gptq.h - GPTQ for one Linear at a time, for pipelines that run their
 * own forward pass: feed the Linear's inputs with ktq_gptq_add_batch(), then
 * ktq_gptq_quantize() solves and writes the compressed-tensors outputs
 * (same buffers and layout as ktq_ct_quantize in compressed_tensors.h).
 * Whole checkpoints are quantized with the GPTQ engine instead
 * (KTQ_ENGINE_GPTQ with KTQ_FORMAT_COMPRESSED_TENSORS in writer.h), which
 * runs ktq's own calibration forward pass.
 *
 * The algorithm is llm-compressor 0.14's: scales and zero points from the
 * RTN min-max observer on the original weights, then columns quantized in
 * blocks, rounding errors spread through the upper Cholesky factor of the
 * damped inverse Hessian H = 2 / N * sum(x x^T) (see docs/gptq.md).
 *
 * Thread-safety: a ktq_gptq must not be used from two threads at once;
 * distinct objects are independent.
 */
#ifndef KTQ_GPTQ_H
#define KTQ_GPTQ_H

#include "common.h"
#include "compressed_tensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Column order in which GPTQ quantizes. */
typedef enum ktq_act_order {
    KTQ_ACT_ORDER_NONE = 0,   /* natural order */
    KTQ_ACT_ORDER_STATIC = 1  /* by descending Hessian diagonal; groups keep their natural columns
                               * (llm-compressor's "static" / "weight", its default) */
} ktq_act_order;

/* Which tokens make a routed expert's Hessians in the GPTQ engine. Every
 * expert is run on every calibration token (so an expert the router never
 * picks still gets a full-rank Hessian), while the layer output follows the
 * router. */
typedef enum ktq_moe_hessian {
    /* Default: the tokens routed to the expert, plus moe_all_tokens_weight
     * times the all-token Hessian (each normalized by its token count).
     * Measured lower perplexity than either alone (docs/gptq.md). With weight
     * 0, experts with fewer routed tokens than inputs use all tokens. AWQ
     * weighs the error of each expert's down the same way when it searches
     * the expert's up -> down scales (docs/awq.md). */
    KTQ_MOE_HESSIAN_BLEND = 0,
    /* Every token with equal weight: llm-compressor's moe_calibrate_all_experts. */
    KTQ_MOE_HESSIAN_ALL = 1
} ktq_moe_hessian;

typedef struct ktq_gptq_options {
    unsigned version;       /* KTQ_GPTQ_OPTIONS_VERSION */
    int block_size;         /* columns per lazy-update block (default 128) */
    double dampening_frac;  /* of the mean Hessian diagonal (default 0.01, llm-compressor's;
                             * kt-kernel's convert_gpu_weights.py uses 0.1) */
    ktq_act_order act_order; /* default KTQ_ACT_ORDER_STATIC */
    int threads;            /* 0 = one per core */
    /* ---- version 2 ---- */
    /* Where ktq_gptq_quantize solves (default KTQ_DEVICE_CPU). KTQ_DEVICE_CUDA:
     * the factorization and column loop on CUDA device `cuda_device` (a build
     * with CUDA), the same codes as the CPU for the same Hessian. */
    ktq_device device;
    int cuda_device;
} ktq_gptq_options;
#define KTQ_GPTQ_OPTIONS_VERSION 2
KTQ_API ktq_status ktq_gptq_options_init(ktq_gptq_options *opts, unsigned version);

typedef struct ktq_gptq ktq_gptq;

/* A Hessian accumulator for a Linear with `in_features` inputs. */
KTQ_API ktq_status ktq_gptq_new(ktq_gptq **out, uint64_t in_features, ktq_error **err);
/* NULL is a no-op. */
KTQ_API void ktq_gptq_free(ktq_gptq *gptq);

/* Adds `rows` input rows (float32, [rows, in_features]) to the Hessian. */
KTQ_API ktq_status ktq_gptq_add_batch(ktq_gptq *gptq, const float *x, uint64_t rows, ktq_error **err);

/* The normalized Hessian 2 / N * sum(x x^T) ([in_features, in_features]
 * float32 into `h`, which holds `capacity` values; may be NULL to ask for
 * the row count only) and the number N of rows added so far. */
KTQ_API ktq_status ktq_gptq_hessian(float *h, size_t capacity, uint64_t *rows_seen, const ktq_gptq *gptq,
                                    ktq_error **err);

/* Quantizes `weights` ([rows, in_features] values of scheme->dtype: raw
 * BF16/F16 bits as uint16, or float) with the accumulated Hessian into the
 * caller's compressed-tensors buffers (sizes from ktq_ct_sizes). The
 * scheme's `rounding` must be a valid value but is not used: GPTQ rounds in
 * float32. `dequantized`
 * (optional, rows x in_features floats) receives the weights the codes stand
 * for; `loss` (optional) the GPTQ loss; `rtn_fallback` (optional) 1 when the
 * damped Hessian was not positive definite and the weights were rounded to
 * nearest instead (the reference's fallback). With no batch added the
 * Hessian is all zeros: every column is "dead" and quantized as zero, as
 * llm-compressor does - add data first. */
KTQ_API ktq_status ktq_gptq_quantize(int32_t *packed, size_t packed_words, void *scales, size_t scale_count,
                                     int32_t *zero_points, size_t zero_point_words, float *dequantized,
                                     double *loss, int *rtn_fallback, const ktq_gptq *gptq, const void *weights,
                                     uint64_t rows, const ktq_ct_scheme *scheme, const ktq_gptq_options *opts,
                                     ktq_error **err);

#ifdef __cplusplus
}
#endif

#endif /* KTQ_GPTQ_H */
