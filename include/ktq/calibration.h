/*
 * ktq/calibration.h - calibration data for the engines that look at
 * activations (GPTQ now; AWQ and imatrix use the same object): token
 * sequences made from a text dataset with the model's tokenizer, or given
 * as token ids by a pipeline that tokenizes itself.
 *
 * From a dataset file:
 *   - plain text: the whole file is tokenized once and cut into consecutive
 *     windows of max_sequence_length tokens (a partial last window is dropped);
 *   - JSONL (".jsonl" / ".json" suffix): one sample per record, its
 *     `text_field` tokenized and truncated to max_sequence_length (records
 *     with fewer than 2 tokens are skipped).
 * When there are more candidates than num_samples, num_samples of them are
 * drawn without replacement by a seeded generator (the same on every
 * platform), then kept in dataset order; when there are fewer, all are used
 * (ktq_calibration_info reports how many).
 *
 * Thread-safety: immutable once made; may be shared by concurrent calls.
 */
#ifndef KTQ_CALIBRATION_H
#define KTQ_CALIBRATION_H

#include "common.h"
#include "text.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ktq_calibration ktq_calibration;

typedef struct ktq_calibration_options {
    unsigned version;         /* KTQ_CALIBRATION_OPTIONS_VERSION */
    int num_samples;          /* default 512 (llm-compressor's) */
    int max_sequence_length;  /* default 2048 */
    uint64_t seed;            /* default 42 */
    const char *text_field;   /* JSONL: the field holding the text (NULL = "text") */
} ktq_calibration_options;
#define KTQ_CALIBRATION_OPTIONS_VERSION 1
KTQ_API ktq_status ktq_calibration_options_init(ktq_calibration_options *opts, unsigned version);

/* Samples from a dataset file (see above). `opts` may be NULL. Fails with
 * KTQ_ERR_INVALID_ARGUMENT when the file yields no sample. */
KTQ_API ktq_status ktq_calibration_open(ktq_calibration **out, const char *dataset_path,
                                        const ktq_tokenizer *tokenizer, const ktq_calibration_options *opts,
                                        ktq_error **err);
/* Samples given as token ids: `count` sequences, sequence i being
 * ids[offsets[i] .. offsets[i + 1]) (offsets has count + 1 entries). The
 * ids are copied; sampling options do not apply. */
KTQ_API ktq_status ktq_calibration_from_tokens(ktq_calibration **out, const int32_t *ids, const uint64_t *offsets,
                                               size_t count, ktq_error **err);
/* NULL is a no-op. */
KTQ_API void ktq_calibration_free(ktq_calibration *calibration);

/* Number of sequences and of tokens in total. */
KTQ_API ktq_status ktq_calibration_info(size_t *samples, uint64_t *tokens, const ktq_calibration *calibration,
                                        ktq_error **err);

#ifdef __cplusplus
}
#endif

#endif /* KTQ_CALIBRATION_H */
