/*
 * ktq/writer.h - engines and writers: turning a model into an output format.
 *
 * Data flows reader -> engine -> writer. A ktq_writer owns one output folder
 * in one format; an engine (chosen in ktq_quantize_options) turns the tensors
 * of one decoder layer at a time into what the writer stores. A converter
 * calls, in any order and each layer once:
 *
 *     ktq_writer_open(&w, model, "out", KTQ_FORMAT_HF_BF16, &wopts, &err);
 *     for (layer = 0; layer < info.num_layers; ++layer)
 *         ktq_quantize_layer(model, layer, &qopts, w, &err);
 *     ktq_quantize_layer(model, KTQ_LAYER_GLOBALS, &qopts, w, &err);
 *     ktq_writer_finish(w, &err);
 *     ktq_writer_free(w);
 *
 * or simply ktq_write(model, &qopts, w, &err), which does all of the above
 * but the open/free. Output files are written under temporary names and only
 * renamed to their final names by ktq_writer_finish(); a writer freed before
 * finishing (error, cancellation) leaves no file with a final name.
 *
 * Crash safety: while a conversion runs, out_dir holds "*.ktq-partial" files
 * and a journal of the layers already on disk (fsynced before they are
 * journaled). A run killed at any point (SIGKILL, power loss) is continued
 * by opening the writer again with `resume` set.
 *
 * Thread-safety: a ktq_writer is used by one thread at a time (the engine
 * parallelises inside each call). The model it reads may be shared.
 */
#ifndef KTQ_WRITER_H
#define KTQ_WRITER_H

#include "common.h"
#include "calibration.h"
#include "compressed_tensors.h"
#include "gptq.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ktq_format {
    /* A Hugging Face checkpoint with every floating tensor in BF16: FP8
     * blocks dequantized (weight_scale_inv dropped), F16/F32 cast, the fp8
     * quantization_config removed from config.json. */
    KTQ_FORMAT_HF_BF16 = 1,
    /* kt-kernel's AMX-ready expert layout (what its convert_cpu_weights.py
     * writes with --quant-method int4 / int8, byte for byte): routed experts
     * quantized symmetrically per output row and packed in AMX tile order,
     * split into `numa_parts` parts; merged safetensors or loose .kt files
     * (ktq_writer_options). See docs/formats/kt-kernel.md. */
    KTQ_FORMAT_KT_AMXINT4 = 2,
    KTQ_FORMAT_KT_AMXINT8 = 3,
    /* A compressed-tensors checkpoint ("pack-quantized", what llm-compressor
     * saves and vLLM / SGLang / transformers load): the Linear weights chosen
     * by ktq_writer_options' targets and ignore lists quantized to integers
     * (W4A16 / W8A16: weight_bits, group_size, asymmetric), every other
     * tensor kept in the model's dtype, config.json with its
     * quantization_config. Byte-identical to llm-compressor's RTN
     * (QuantizationModifier). See docs/formats/compressed-tensors.md. */
    KTQ_FORMAT_COMPRESSED_TENSORS = 4,
    /* One GGUF file (llama.cpp, Candle): `out_dir` of ktq_writer_open() is
     * then the file's path; the conversion works in "<path>.ktq-work/" and
     * renames the finished file into place. Weights in gguf_type (ggml's
     * blocks, bit-identical to ggml), norms and routers F32, llama.cpp's
     * tensor names and metadata, tokenizer.ggml.* from tokenizer.json.
     * Architectures so far: llama (and Mixtral), qwen2, qwen3, qwen3moe,
     * deepseek2 (DeepSeek-V3, MLA split as llama.cpp expects). */
    KTQ_FORMAT_GGUF = 5,
    /* kt-kernel's AWQ expert layout (its convert_cpu_weights.py with
     * --input-type awq --quant-method awq, byte for byte, without a GPU):
     * the routed experts of an AutoAWQ checkpoint re-packed (no NUMA split,
     * merged safetensors only), every other tensor copied as stored. */
    KTQ_FORMAT_KT_AWQ = 6
} ktq_format;

typedef enum ktq_engine {
    KTQ_ENGINE_DEFAULT = 0, /* the natural engine for the writer's format */
    KTQ_ENGINE_CAST = 1,    /* dequantize / cast every tensor to the format's dtype */
    KTQ_ENGINE_KT_AMX = 2,  /* kt-kernel AMX INT4/INT8 quantization of routed experts */
    KTQ_ENGINE_RTN = 3,     /* round-to-nearest integer quantization (compressed-tensors) */
    KTQ_ENGINE_GGML = 4,    /* ggml block quantization (GGUF) */
    KTQ_ENGINE_AWQ = 6,     /* AWQ: activation-aware scales folded into the model, then round to
                             * nearest (compressed-tensors; needs calibration, see below) */
    KTQ_ENGINE_GPTQ = 5     /* GPTQ with ktq's calibration forward pass (compressed-tensors; needs
                             * ktq_quantize_options.calibration) */
} ktq_engine;

/* ktq_device (where an engine computes) is in common.h. */

KTQ_API const char *ktq_format_name(ktq_format format);

typedef struct ktq_writer ktq_writer;

typedef struct ktq_writer_options {
    unsigned version;          /* KTQ_WRITER_OPTIONS_VERSION */
    /* Largest payload per output shard in bytes (0 = 5,000,000,000 as
     * transformers' save_pretrained). One tensor larger than this gets a shard
     * of its own. */
    uint64_t max_shard_bytes;
    /* Copy tokenizer, generation and chat-template files (default 1). */
    int copy_aux_files;
    /* Allow writing into a folder that already holds files (default 0). */
    int overwrite;
    /* Continue an interrupted conversion in out_dir (default 0): the layers
     * its journal records as written are skipped, the rest are redone, and
     * the result is byte-identical to an uninterrupted run. Without a usable
     * journal the conversion starts over. */
    int resume;
    /* With resume: treat layers below this one as written, whatever the
     * journal says (kt-kernel's --resume-layer). 0 = trust the journal. */
    int resume_layer;
    /* Keep the partial files and journal when the writer is freed
     * unfinished (error, cancellation), so that a later run can resume
     * (default 0: remove them). */
    int keep_partial;
    /* ---- version 2 ---- */
    /* kt-kernel formats: parts each expert is split into, one per NUMA node
     * (kt-kernel's --threadpool-count; 0 = 2, its default). The
     * intermediate size must divide evenly. */
    int numa_parts;
    /* kt-kernel formats: write _layer_L/_numa_P/ .kt files instead of
     * merged safetensors (kt-kernel's --no-merge-safetensor). */
    int loose_files;
    /* Skip the fdatasync of each finished layer before the journal records
     * it (default 0: sync). The output is still fsynced before it gets its
     * final names, and resuming after a killed process (SIGKILL, Ctrl-C,
     * OOM) stays exact; only after a power loss or OS crash may the journal
     * claim a layer whose bytes never reached the disk: then start over
     * rather than resume. Saves the per-layer writeback wait. */
    int no_layer_sync;
    /* ---- version 3: compressed-tensors ---- */
    /* Bits per weight: 4 (W4A16, default) or 8 (W8A16); 2..8 accepted. */
    int weight_bits;
    /* Weights per scale along the input features (0 = 128, the presets'
     * value); -1 = one scale per output channel. */
    int group_size;
    /* 1 = asymmetric, with zero points (default 0: symmetric). */
    int asymmetric;
    /* Modules to quantize, in compressed-tensors' syntax, one per line:
     * "Linear" (every Linear), an exact module name, or "re:REGEX" (matched
     * at the start of the name, as Python's re.match); a line that is none
     * of these is taken as a regex. NULL = "Linear". */
    const char *targets;
    /* Modules to keep in high precision, same syntax. NULL = kt-kernel's
     * convert_gpu_weights.py defaults: lm_head, routers, attention, shared
     * experts and their gate, linear attention, DeepSeek's first dense
     * layers; "" = none. */
    const char *ignore;
    /* The dtype of scales and of every kept floating tensor, and of the
     * arithmetic (KTQ_DTYPE_BF16, F16, F32); 0 = the model's (its config's
     * dtype, BF16 for FP8 checkpoints). */
    ktq_dtype scale_dtype;
    /* Which llm-compressor to match byte for byte: KTQ_CT_ROUND_FP32 (as it
     * computes on a GPU, default) or KTQ_CT_ROUND_DTYPE (on a CPU). */
    ktq_ct_rounding ct_rounding;
    /* GGUF: the ggml type of the weights (default KTQ_GGML_Q8_0) and 1 to
     * store routed experts one tensor per expert (blk.N.ffn_gate.E.weight,
     * Candle's quantized_llama) instead of stacked (blk.N.ffn_gate_exps). */
    int gguf_type;
    int gguf_split_experts;
    /* GGUF: per-tensor types, one "REGEX=TYPE" per line (e.g.
     * "ffn_down_exps=Q6_K"): the first rule whose regex is found in a
     * weight's GGUF name gives its type (as llama-quantize's --tensor-type);
     * NULL = none. */
    const char *gguf_tensor_types;
    /* ---- version 4 ---- */
    /* GGUF: a mixture of types instead of gguf_type for every weight (NULL =
     * none): llama-quantize's file types "Q2_K", "Q3_K_S",
     * "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
     * "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", with the per-tensor types
     * llama-quantize gives them (more bits for attn_v, ffn_down and the output
     * by layer position and model shape; same bytes), or ktq's MoE mixtures
     * "MOE_Q2_K" ... "MOE_Q6_K": routed experts in that type, every other
     * weight Q8_0. gguf_tensor_types rules still come first. */
    const char *gguf_mix;
    /* ---- version 5 ---- */
    /* GGUF: llama.cpp's pre-tokenizer name (tokenizer.ggml.pre) to write,
     * NULL = derive it from tokenizer.json. llama.cpp splits text by rules it
     * selects by this name, so ktq writes only a name whose rules match the
     * tokenizer.json's pre-tokenizer ("gpt-2", "llama-bpe", "qwen2",
     * "qwen35", "deepseek-v3") and refuses a pre-tokenizer it does not
     * recognise (KTQ_ERR_UNSUPPORTED, the patterns named). Set it only when
     * you know llama.cpp's name for such a tokenizer: it is written
     * unchecked. */
    const char *gguf_tokenizer_pre;
    /* GGUF: an importance matrix to quantize with (NULL = none), as
     * llama-quantize --imatrix: llama-imatrix's GGUF file or its legacy .dat.
     * Weights with an entry are quantized by ggml's importance-weighted path
     * (ktq_quantize_rows; same bytes as llama-quantize with that file);
     * weights without one as usual. An entry whose size does not fit its
     * weight, a malformed file or non-finite importance is an error naming
     * the file and entry. The Q4_0 / Q5_0 mixtures then put the first eighth
     * of ffn_down in Q4_1 / Q5_1, as llama-quantize does with an imatrix. */
    const char *gguf_imatrix;
    /* GGUF: placement data for hybrid CPU/GPU pipelines. The file records,
     * per MoE layer, how many calibration tokens the router sent to each
     * expert (ktq.routing.blk.N.expert_tokens, an i32 array) from this
     * routing statistics file (routing_stats.json, written by the GPTQ
     * engine's calibration); NULL = from gguf_imatrix's counts when it is a
     * GGUF imatrix, else none. */
    const char *gguf_routing_stats;
    /* GGUF: 1 to record the SHA-256 of config.json, tokenizer.json and every
     * weight file of the source (ktq.source.sha256, "file digest" strings;
     * a shard's digest is the Hugging Face hub's LFS id for it). Reads the
     * whole checkpoint once more before converting, so it is off by default. */
    int gguf_source_sha256;
    /* ---- version 6 ---- */
    /* Do not sync the weight files (default 0): no fdatasync per layer (as
     * no_layer_sync) and no fsync of the weight files before they get their
     * final names; only the small files (journal, config, index) are still
     * synced, which on some file systems may still wait for data already
     * being written back. The output is complete for every reader once the
     * conversion returns and resuming after a killed process stays exact,
     * but after a power loss or OS crash a file may hold less than it
     * claims, however complete it looks: convert again then. For outputs that would be
     * redone anyway (scratch disks, CI); kt-kernel's converter and
     * transformers' save_pretrained never sync either. */
    int no_sync;
    /* ---- version 7 ---- */
    /* compressed-tensors: how scales are chosen, KTQ_CT_OBSERVER_MINMAX
     * (default) or KTQ_CT_OBSERVER_MSE (see ktq/compressed_tensors.h); also
     * what the GPTQ engine starts from. config.json records it
     * ("memoryless_minmax" / "memoryless_mse"). */
    ktq_ct_observer ct_observer;
} ktq_writer_options;
#define KTQ_WRITER_OPTIONS_VERSION 7
KTQ_API ktq_status ktq_writer_options_init(ktq_writer_options *opts, unsigned version);

/* Plan the output of `model` in `format` into folder `out_dir` (created if
 * missing). The model must outlive the writer. `opts` may be NULL. */
KTQ_API ktq_status ktq_writer_open(ktq_writer **out, const ktq_model *model,
                                   const char *out_dir, ktq_format format,
                                   const ktq_writer_options *opts, ktq_error **err);

/* Number of output files and payload bytes the writer will produce (known
 * once it is open; used for size estimates). */
KTQ_API ktq_status ktq_writer_plan(uint64_t *output_bytes, size_t *output_files,
                                   const ktq_writer *writer, ktq_error **err);

/* Estimate, without writing anything, what writing `model` in `format`
 * would produce: payload bytes, number of files, and peak resident memory of
 * the conversion with `threads` workers (0 = one per core). */
KTQ_API ktq_status ktq_estimate_output(uint64_t *output_bytes, size_t *output_files, uint64_t *peak_memory,
                                       const ktq_model *model, ktq_format format,
                                       const ktq_writer_options *opts, int threads, ktq_error **err);

/* Write the index and config, rename every file to its final name. Fails
 * with KTQ_ERR_STATE if some layer was not written. */
KTQ_API ktq_status ktq_writer_finish(ktq_writer *writer, ktq_error **err);
/* Release the writer; unfinished output is removed. NULL is a no-op. */
KTQ_API void ktq_writer_free(ktq_writer *writer);

/* ---- Engines --------------------------------------------------------- */

#define KTQ_LAYER_GLOBALS (-1) /* embeddings, final norm, lm_head, extra tensors */

typedef struct ktq_quantize_options {
    unsigned version;          /* KTQ_QUANTIZE_OPTIONS_VERSION */
    ktq_engine engine;
    int threads;               /* 0 = one per core (hwloc) */
    ktq_progress_cb progress;  /* may be NULL */
    void *payload;             /* passed to progress */
    /* NaN or infinite weights make the operation fail with KTQ_ERR_FORMAT
     * naming the tensor (a corrupt download); set to 1 to pass them through. */
    int allow_non_finite;
    /* ---- version 2 ---- */
    /* Where the engine computes (default KTQ_DEVICE_CPU). Engines without a
     * CUDA path fail with KTQ_ERR_UNSUPPORTED for KTQ_DEVICE_CUDA. */
    ktq_device device;
    /* ---- version 3: calibration engines (GPTQ) ---- */
    /* The samples run through the model (ktq/calibration.h); borrowed, must
     * outlive the call. Required by KTQ_ENGINE_GPTQ. */
    const ktq_calibration *calibration;
    /* GPTQ: dampening as a fraction of the mean Hessian diagonal (default
     * 0.01, llm-compressor's; kt-kernel's convert_gpu_weights.py uses 0.1),
     * columns per block (default 128), column order (default
     * KTQ_ACT_ORDER_STATIC, llm-compressor's). */
    double dampening_frac;
    int gptq_block_size;
    ktq_act_order act_order;
    /* Calibration samples per forward call (default 8; bounds activation
     * memory: about batch * sequence length * hidden * 4 bytes, several times). */
    int calibration_batch;
    /* GPTQ and AWQ on routed experts: which tokens make their Hessians
     * (GPTQ) and measure the error of their up -> down scales (AWQ)
     * (default KTQ_MOE_HESSIAN_BLEND with weight 0.2; see ktq/gptq.h). */
    ktq_moe_hessian moe_hessian;
    double moe_all_tokens_weight;
    /* ---- version 4 ---- */
    /* KTQ_DEVICE_CUDA: bytes of GPU memory the engine may hold (0 = up to
     * 80 % of what is free when a layer starts). GPTQ keeps its Hessian sums
     * on the GPU while they fit half of it (else in host memory) and solves
     * in chunks that fit the other half; kt-kernel's --max_gpu_memory. */
    uint64_t max_device_memory;
    /* KTQ_DEVICE_CUDA: the CUDA devices to use (NULL = device 0; indices
     * as CUDA numbers them under CUDA_VISIBLE_DEVICES). GPTQ calibrates on
     * the first and spreads each layer's solve over all of them. Borrowed. */
    const int *devices;
    size_t device_count;
    /* ---- version 5: AWQ (KTQ_ENGINE_AWQ, with `calibration`) ---- */
    /* Scale exponents tried per mapping: 0, 1/grid, ..., (grid-1)/grid
     * (default 20, llm-compressor's n_grid). */
    int awq_grid;
    /* 1 (default): scales from activation and weight magnitudes
     * (llm-compressor's duo_scaling); 0: from activations only (AutoAWQ). */
    int awq_duo_scaling;
    /* 1: after the scales, AutoAWQ's clipping search per quantized Linear
     * (not q/k): each group's range shrunk by up to half where that lowers
     * its output error on the calibration inputs. 0 (default): none, as
     * llm-compressor's AWQ (lower perplexity on the shared models). */
    int awq_clip;
    /* ---- version 6 ---- */
    /* Calibration engines (GPTQ, AWQ): bytes of host memory the engine may
     * hold for calibration (0 = no limit; kt-kernel's --max_cpu_memory).
     * When the activations of all samples would take more than half of it,
     * they are kept in a temporary file (TMPDIR) and read one batch at a
     * time (same bytes out, more I/O); when what one layer needs on its own
     * (its weights, Hessians or AWQ's recorded inputs, one batch) exceeds
     * the limit, the call fails with KTQ_ERR_NO_MEMORY before anything
     * of that layer is written, naming what to reduce. */
    uint64_t max_host_memory;
} ktq_quantize_options;
#define KTQ_QUANTIZE_OPTIONS_VERSION 6
KTQ_API ktq_status ktq_quantize_options_init(ktq_quantize_options *opts, unsigned version);

/* Run the engine over decoder layer `layer` (or KTQ_LAYER_GLOBALS) and hand
 * the result to the writer. Each layer may be written once. */
KTQ_API ktq_status ktq_quantize_layer(const ktq_model *model, int layer,
                                      const ktq_quantize_options *opts, ktq_writer *writer,
                                      ktq_error **err);

/* All layers, the globals, then ktq_writer_finish(). */
KTQ_API ktq_status ktq_write(const ktq_model *model, const ktq_quantize_options *opts,
                             ktq_writer *writer, ktq_error **err);

#ifdef __cplusplus
}
#endif

#endif /* KTQ_WRITER_H */
