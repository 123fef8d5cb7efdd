/*
 * ktq/model.h - opening a Hugging Face checkpoint and reading its tensors.
 *
 * A ktq_model is a read-only view of one checkpoint folder (config.json plus
 * one model.safetensors or shards listed in model.safetensors.index.json).
 * The tensor data is memory-mapped, never loaded whole.
 *
 * Thread-safety: once ktq_open_model() has returned, every function taking a
 * `const ktq_model *` may be called from any number of threads at once.
 * ktq_model_free() must not race with any other call on the same model.
 */
#ifndef KTQ_MODEL_H
#define KTQ_MODEL_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ktq_model ktq_model;

/* ---- Opening --------------------------------------------------------- */

typedef struct ktq_open_options {
    unsigned version;  /* KTQ_OPEN_OPTIONS_VERSION */
    /* Worker threads for reads that convert data (0 = one per core, from
     * hwloc). */
    int threads;
    /* Refuse headers larger than this many bytes (0 = 100 MiB, the limit the
     * safetensors reference implementation uses). */
    uint64_t max_header_bytes;
    /* ---- version 2 ---- */
    /* A kt-kernel AMX output folder (ktq's or kt-kernel's converter's, merged
     * or loose; see kt.h) converted from this checkpoint: every routed
     * expert it holds is read as its dequantized weights (code x scale)
     * instead of the checkpoint's, so `ktq eval-ppl` scores what kt-kernel
     * computes with. NULL = none. Fails naming the part when a shape does not
     * match the checkpoint's expert. */
    const char *kt_experts;
    /* ---- version 3 ---- */
    /* A GGUF file converted from this checkpoint (ktq's, or llama.cpp's
     * convert + llama-quantize with the same tensor names): every weight it
     * holds - routed experts stacked or split per expert included - is read
     * as its dequantized blocks instead of the checkpoint's, with llama's Q/K
     * row permutation undone, so `ktq eval-ppl` scores what llama.cpp or
     * Candle compute with. The checkpoint still gives the config and the
     * tokenizer. NULL = none. Fails naming the tensor when the file lacks one
     * the checkpoint has or a shape differs. */
    const char *gguf_weights;
} ktq_open_options;
#define KTQ_OPEN_OPTIONS_VERSION 3
KTQ_API ktq_status ktq_open_options_init(ktq_open_options *opts, unsigned version);

/* Open the checkpoint folder `path` (or one .safetensors file inside a folder
 * holding config.json). `opts` may be NULL for defaults.
 * Validates every safetensors header fully; checkpoints that are already
 * quantized (compressed-tensors, GPTQ, AWQ) are refused with
 * KTQ_ERR_UNSUPPORTED. On failure *out is set to NULL. */
KTQ_API ktq_status ktq_open_model(ktq_model **out, const char *path,
                                  const ktq_open_options *opts, ktq_error **err);
KTQ_API void ktq_model_free(ktq_model *model);

/* ---- Model description ----------------------------------------------- */

typedef enum ktq_arch_family {
    KTQ_ARCH_UNKNOWN = 0,
    KTQ_ARCH_LLAMA = 1,       /* dense Llama, also Mistral */
    KTQ_ARCH_QWEN2 = 2,       /* dense */
    KTQ_ARCH_QWEN3 = 3,       /* dense */
    KTQ_ARCH_QWEN2_MOE = 4,   /* shared_expert + shared_expert_gate */
    KTQ_ARCH_QWEN3_MOE = 5,
    KTQ_ARCH_QWEN3_5_MOE = 6,
    KTQ_ARCH_MIXTRAL = 7,     /* w1 = gate, w3 = up, w2 = down */
    KTQ_ARCH_DEEPSEEK_V2 = 8,
    KTQ_ARCH_DEEPSEEK_V3 = 9, /* also Kimi-K2 */
    KTQ_ARCH_GLM4_MOE = 10,
    KTQ_ARCH_GENERIC_MOE = 11 /* not in ktq's table; experts found by name */
} ktq_arch_family;

typedef enum ktq_expert_storage {
    KTQ_EXPERTS_NONE = 0,      /* dense model */
    KTQ_EXPERTS_PER_EXPERT = 1,/* experts.E.{gate,up,down}_proj / w1,w2,w3 */
    KTQ_EXPERTS_FUSED = 2      /* experts.gate_up_proj [E,2I,H], down_proj [E,H,I] */
} ktq_expert_storage;

typedef struct ktq_model_info {
    unsigned version;             /* KTQ_MODEL_INFO_VERSION */
    /* Strings are owned by the model and live until ktq_model_free(). */
    const char *architecture;     /* config "architectures"[0], or "" */
    const char *model_type;       /* config "model_type", or "" */
    const char *path;             /* the folder opened */
    const char *notice;           /* "" or a note, e.g. detected by name only */
    ktq_arch_family family;
    int num_layers;               /* decoder layers (num_hidden_layers) */
    int hidden_size;
    int intermediate_size;        /* dense MLP width */
    int moe_intermediate_size;    /* one routed expert's width; 0 if dense */
    int num_experts;              /* routed experts per MoE layer; 0 if dense */
    int experts_per_token;        /* top-k; 0 if dense */
    int first_dense_layers;       /* leading layers without routed experts */
    int num_moe_layers;
    int num_shared_experts;       /* per MoE layer */
    int vocab_size;
    ktq_expert_storage expert_storage;
    ktq_dtype source_dtype;       /* dominant dtype of the weight matrices */
    int fp8_block_rows;           /* weight_block_size of fp8 checkpoints, else 0 */
    int fp8_block_cols;
    size_t num_tensors;
    size_t num_files;
    uint64_t total_bytes;         /* sum of all tensor payloads */
} ktq_model_info;
#define KTQ_MODEL_INFO_VERSION 1
KTQ_API ktq_status ktq_model_info_init(ktq_model_info *info, unsigned version);

/* Fill `info` (its version set by ktq_model_info_init). */
KTQ_API ktq_status ktq_model_get_info(ktq_model_info *info, const ktq_model *model,
                                      ktq_error **err);

KTQ_API const char *ktq_arch_family_name(ktq_arch_family family);

/* Non-zero when layer `layer` holds routed experts. */
KTQ_API int ktq_model_layer_is_moe(const ktq_model *model, int layer);

/* ---- Tensors --------------------------------------------------------- */

#define KTQ_MAX_DIMS 8

typedef struct ktq_tensor_info {
    unsigned version;             /* KTQ_TENSOR_INFO_VERSION */
    const char *name;             /* owned by the model */
    const char *file;             /* file name inside the folder; owned by the model */
    ktq_dtype dtype;
    int ndim;
    int64_t shape[KTQ_MAX_DIMS];
    uint64_t nbytes;              /* stored payload size */
    int layer;                    /* decoder layer, or -1 */
} ktq_tensor_info;
#define KTQ_TENSOR_INFO_VERSION 1
KTQ_API ktq_status ktq_tensor_info_init(ktq_tensor_info *info, unsigned version);

/* Tensors are numbered 0..count-1 in name order (the order of the merged
 * index), independent of shard layout. */
KTQ_API size_t ktq_model_tensor_count(const ktq_model *model);
KTQ_API ktq_status ktq_model_tensor_info(ktq_tensor_info *info, const ktq_model *model,
                                         size_t index, ktq_error **err);
KTQ_API ktq_status ktq_model_find_tensor(size_t *index, const ktq_model *model,
                                         const char *name, ktq_error **err);

/* Read tensor `name` converted to `dtype` (KTQ_DTYPE_F32 or KTQ_DTYPE_BF16)
 * into `buf`, which must hold numel * dtype size bytes. FP8 weights with a
 * `weight_scale_inv` companion are dequantized block by block
 * (fp8 value * block scale in float32, then rounded to nearest even for BF16).
 * The `*_scale_inv` tensors themselves can be read like any other. */
KTQ_API ktq_status ktq_model_read_tensor(void *buf, size_t buf_bytes, const ktq_model *model,
                                         const char *name, ktq_dtype dtype, ktq_error **err);

/* ---- Experts --------------------------------------------------------- */

typedef enum ktq_expert_proj {
    KTQ_PROJ_GATE = 0,  /* [moe_intermediate, hidden] */
    KTQ_PROJ_UP = 1,    /* [moe_intermediate, hidden] */
    KTQ_PROJ_DOWN = 2   /* [hidden, moe_intermediate] */
} ktq_expert_proj;

/* Shape (rows = out features, cols = in features) of one routed expert
 * matrix, whatever the storage (per expert or fused). */
KTQ_API ktq_status ktq_model_expert_shape(int64_t *rows, int64_t *cols, const ktq_model *model,
                                          int layer, int expert, ktq_expert_proj proj,
                                          ktq_error **err);
/* Read one routed expert matrix as F32 or BF16, row-major [rows, cols]. */
KTQ_API ktq_status ktq_model_read_expert(void *buf, size_t buf_bytes, const ktq_model *model,
                                         int layer, int expert, ktq_expert_proj proj,
                                         ktq_dtype dtype, ktq_error **err);

#ifdef __cplusplus
}
#endif

#endif /* KTQ_MODEL_H */
