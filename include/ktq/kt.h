/*
 * ktq/kt.h - kt-kernel's AMX expert format, read back: open a folder that
 * ktq or kt-kernel's converter wrote (merged safetensors or loose .kt files),
 * list its expert parts, read or dequantize them, and merge loose files into
 * the merged layout (kt-kernel's merge_cpu_weights.py).
 *
 * Writing the format is ktq_writer_open(..., KTQ_FORMAT_KT_AMXINT4 / INT8).
 *
 * Thread-safety: a ktq_kt_output is immutable once open; every call on it
 * may run on any number of threads at once.
 */
#ifndef KTQ_KT_H
#define KTQ_KT_H

#include "common.h"
#include "model.h"
#include "writer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ktq_kt_output ktq_kt_output;

/* Opens `dir`: merged when it holds *.safetensors, else loose. Fails with
 * KTQ_ERR_NOT_FOUND when it holds no kt expert weights, KTQ_ERR_FORMAT
 * (naming file and tensor) when they are inconsistent. */
KTQ_API ktq_status ktq_kt_output_open(ktq_kt_output **out, const char *dir, ktq_error **err);
/* NULL is a no-op. */
KTQ_API void ktq_kt_output_free(ktq_kt_output *output);

/* Expert parts, ordered by layer, projection, expert, NUMA part. */
KTQ_API size_t ktq_kt_output_part_count(const ktq_kt_output *output);
/* Non-zero for the merged layout. */
KTQ_API int ktq_kt_output_is_merged(const ktq_kt_output *output);

typedef struct ktq_kt_part_info {
    unsigned version;        /* KTQ_KT_PART_INFO_VERSION */
    const char *name;        /* "blk.L.ffn_gate_exps.E.numa.P"; owned by the output */
    int layer;
    int expert;
    ktq_expert_proj proj;
    int part;                /* NUMA part */
    ktq_format method;       /* KTQ_FORMAT_KT_AMXINT4 or KTQ_FORMAT_KT_AMXINT8 */
    uint64_t rows;           /* packed matrix [rows, cols]: rows = output features */
    uint64_t cols;
    uint64_t packed_bytes;   /* weight bytes; the scales are rows float32 */
} ktq_kt_part_info;
#define KTQ_KT_PART_INFO_VERSION 1
KTQ_API ktq_status ktq_kt_part_info_init(ktq_kt_part_info *info, unsigned version);
KTQ_API ktq_status ktq_kt_output_part(ktq_kt_part_info *info, const ktq_kt_output *output, size_t index,
                                      ktq_error **err);

/* The packed bytes (packed_bytes) and the rows float32 scales of part `index`. */
KTQ_API ktq_status ktq_kt_output_read(void *packed, size_t packed_bytes, float *scales, size_t rows,
                                      const ktq_kt_output *output, size_t index, ktq_error **err);
/* rows x cols dequantized weights (code x scale) of part `index`. */
KTQ_API ktq_status ktq_kt_output_dequantize(float *dst, size_t count, const ktq_kt_output *output, size_t index,
                                            ktq_error **err);

/* Writes the loose output in `loose_dir` as merged safetensors into
 * `out_dir` (one shard per MoE layer, as kt-kernel's converter lays them
 * out). With `model` (the checkpoint it was converted from, may be NULL) the
 * non-expert tensors, config.json and tokenizer files are added too, which
 * gives exactly the files a merged conversion writes. `opts` may be NULL;
 * its overwrite, copy_aux_files and (version 6) no_sync are honoured. Nothing
 * has a final name until all is written. */
KTQ_API ktq_status ktq_kt_merge(const char *out_dir, const char *loose_dir, const ktq_model *model,
                                const ktq_writer_options *opts, ktq_error **err);

#ifdef __cplusplus
}
#endif

#endif /* KTQ_KT_H */
