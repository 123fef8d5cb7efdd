/*
 * ktq/eval.h - quality of a checkpoint: perplexity with ktq's native
 * forward pass (float32; Llama, Mistral, Qwen2/3, Qwen2/3-MoE, Mixtral,
 * DeepSeek-V3 with MLA). The same forward feeds calibration (GPTQ), so a
 * model's perplexity here is what the calibration engines see.
 *
 * Thread-safety: reentrant; the model may be shared with other calls.
 */
#ifndef KTQ_EVAL_H
#define KTQ_EVAL_H

#include "common.h"
#include "model.h"
#include "text.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ktq_eval_options {
    unsigned version;     /* KTQ_EVAL_OPTIONS_VERSION */
    int window;           /* tokens per window (default 256) */
    uint64_t max_tokens;  /* score the first max_tokens tokens (default 131072; 0 = all) */
    int batch_windows;    /* windows per forward call on the CPU (default 16; bounds activation memory) */
    ktq_progress_cb progress; /* after each decoder layer (layer, layers_total); may cancel */
    void *payload;
    /* Optional: receives -log p(next token) of every scored position, window
     * by window (tokens_scored values); the call fails with
     * KTQ_ERR_BUFFER_TOO_SMALL before any work when token_nll_capacity is
     * smaller. NULL = not wanted. */
    double *token_nll;
    size_t token_nll_capacity;
    /* ---- version 2 ---- */
    /* Where the forward pass runs (default KTQ_DEVICE_CPU). KTQ_DEVICE_CUDA
     * (a build with CUDA): on CUDA device 0 in float32, whole decoder layers
     * with the hidden states kept there while they fit (up to 64 windows per
     * batch, fewer when a layer's work would not fit), else only the matrix
     * products, layer by layer. */
    ktq_device device;
} ktq_eval_options;
#define KTQ_EVAL_OPTIONS_VERSION 2
KTQ_API ktq_status ktq_eval_options_init(ktq_eval_options *opts, unsigned version);

typedef struct ktq_eval_result {
    double perplexity;       /* exp(mean_nll) */
    double mean_nll;         /* mean next-token cross-entropy, nats */
    uint64_t tokens_scored;  /* predicted positions: windows * (window - 1) */
    uint64_t windows;
} ktq_eval_result;

/* Perplexity of `model` on `text` (UTF-8, text_len bytes) tokenized with
 * `tokenizer`: the first max_tokens tokens as non-overlapping windows (a
 * partial last window is dropped), mean cross-entropy of each next token.
 * `opts` may be NULL for defaults. Architectures or RoPE variants the
 * forward pass does not implement fail with KTQ_ERR_UNSUPPORTED. */
KTQ_API ktq_status ktq_eval_perplexity(ktq_eval_result *out, const ktq_model *model, const ktq_tokenizer *tokenizer,
                                       const char *text, size_t text_len, const ktq_eval_options *opts,
                                       ktq_error **err);

#ifdef __cplusplus
}
#endif

#endif /* KTQ_EVAL_H */
