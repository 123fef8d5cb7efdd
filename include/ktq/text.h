/*
 * ktq/text.h - the tokenizer of a checkpoint (byte-level BPE from its
 * tokenizer.json), as Hugging Face `tokenizers` runs it. ktq uses it for
 * calibration data and perplexity; pipelines with their own forward pass can
 * use it to make the same token ids ktq sees.
 *
 * Supported: model type BPE without byte fallback; pre-tokenizer ByteLevel
 * (GPT-2 regex) or a Sequence of Split(Regex, Isolated) steps and ByteLevel
 * (Llama 3, Qwen); normalizer none (or NFC on ASCII text); added tokens;
 * post-processor ByteLevel or TemplateProcessing. Anything else fails with
 * KTQ_ERR_UNSUPPORTED naming the field, never a silently different encoding.
 *
 * Thread-safety: ktq_tokenizer_encode() may run on many threads at once on
 * one tokenizer; ktq_tokenizer_free() must not race with it.
 */
#ifndef KTQ_TEXT_H
#define KTQ_TEXT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ktq_tokenizer ktq_tokenizer;

/* Loads `path`: a tokenizer.json file, or a model folder that holds one. */
KTQ_API ktq_status ktq_tokenizer_open(ktq_tokenizer **out, const char *path, ktq_error **err);
/* NULL is a no-op. */
KTQ_API void ktq_tokenizer_free(ktq_tokenizer *tokenizer);

/* Number of token ids (largest id + 1). */
KTQ_API size_t ktq_tokenizer_vocab_size(const ktq_tokenizer *tokenizer);

/* Encodes `text_len` bytes of UTF-8 `text` into `ids`. `*count` receives the
 * number of ids; when it exceeds `capacity` nothing is written and the call
 * fails with KTQ_ERR_BUFFER_TOO_SMALL (call again with a larger buffer;
 * ids may be NULL when capacity is 0). Invalid UTF-8 fails with
 * KTQ_ERR_FORMAT giving the byte offset. */
KTQ_API ktq_status ktq_tokenizer_encode(int32_t *ids, size_t capacity, size_t *count, const ktq_tokenizer *tokenizer,
                                        const char *text, size_t text_len, ktq_error **err);

#ifdef __cplusplus
}
#endif

#endif /* KTQ_TEXT_H */
