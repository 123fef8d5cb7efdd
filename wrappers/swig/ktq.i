/* ktq.i - the one SWIG interface file behind the Go and Java bindings.
 *
 * SWIG sees a small "call layer" defined here on top of include/ktq/*.h:
 * functions that return handles directly and report failures in a
 * ktqs_result (status + message) instead of the `**out` / `ktq_error **`
 * out-parameters, and a cancel token that the progress callback polls, so a
 * Go context or a Java thread interrupt can cancel a running conversion
 * without C calling back into the managed runtime. Each language's own
 * .i file (go/, java/) adds its typemaps and %includes this one; the
 * idiomatic public API is written in that language on top.
 */
%{
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ktq/ktq.h>

typedef struct ktqs_result {
    int status;
    char message[2048];
} ktqs_result;

/* Written by the progress callback on the converting thread, read and
 * cancelled from any other thread: accessed with atomics only. */
typedef struct ktqs_token {
    int cancel;
    int layer;
    int layers_total;
    uint64_t bytes_done;
    uint64_t bytes_total;
} ktqs_token;

static void ktqs_set(ktqs_result *res, int status, ktq_error *err) {
    if (!res) { ktq_error_free(err); return; }
    res->status = status;
    snprintf(res->message, sizeof res->message, "%s", err ? ktq_error_message(err) : ktq_status_str(status));
    ktq_error_free(err);
}

static int ktqs_progress(const ktq_progress *p, void *payload) {
    ktqs_token *t = (ktqs_token *)payload;
    __atomic_store_n(&t->layer, p->layer, __ATOMIC_RELAXED);
    __atomic_store_n(&t->layers_total, p->layers_total, __ATOMIC_RELAXED);
    __atomic_store_n(&t->bytes_total, p->bytes_total, __ATOMIC_RELAXED);
    __atomic_store_n(&t->bytes_done, p->bytes_done, __ATOMIC_RELEASE);
    return __atomic_load_n(&t->cancel, __ATOMIC_ACQUIRE);
}
%}

%include <stdint.i>

typedef struct ktqs_result {
    int status;
    char message[2048];
} ktqs_result;

typedef struct ktqs_token {
    int cancel;
    int layer;
    int layers_total;
    uint64_t bytes_done;
    uint64_t bytes_total;
} ktqs_token;

typedef struct ktq_model ktq_model;
typedef struct ktq_writer ktq_writer;
typedef struct ktq_calibration ktq_calibration;

%inline %{
const char *ktqs_version(void) { return ktq_version(); }

ktq_model *ktqs_open_model(const char *path, int threads, ktqs_result *res) {
    ktq_open_options o;
    ktq_open_options_init(&o, KTQ_OPEN_OPTIONS_VERSION);
    o.threads = threads;
    ktq_model *m = NULL;
    ktq_error *err = NULL;
    int st = ktq_open_model(&m, path, &o, &err);  /* before reading err: argument order is unspecified */
    ktqs_set(res, st, err);
    return m;
}
void ktqs_model_free(ktq_model *m) { ktq_model_free(m); }

/* Model description, one value per call (no struct lifetimes to manage). */
long long ktqs_model_info(ktq_model *m, const char *field, ktqs_result *res) {
    ktq_model_info i;
    ktq_model_info_init(&i, KTQ_MODEL_INFO_VERSION);
    ktq_error *err = NULL;
    int st = ktq_model_get_info(&i, m, &err);
    ktqs_set(res, st, err);
    if (st != KTQ_OK) return 0;
    if (!strcmp(field, "num_layers")) return i.num_layers;
    if (!strcmp(field, "hidden_size")) return i.hidden_size;
    if (!strcmp(field, "num_experts")) return i.num_experts;
    if (!strcmp(field, "experts_per_token")) return i.experts_per_token;
    if (!strcmp(field, "moe_intermediate_size")) return i.moe_intermediate_size;
    if (!strcmp(field, "first_dense_layers")) return i.first_dense_layers;
    if (!strcmp(field, "num_moe_layers")) return i.num_moe_layers;
    if (!strcmp(field, "num_shared_experts")) return i.num_shared_experts;
    if (!strcmp(field, "num_tensors")) return (long long)i.num_tensors;
    if (!strcmp(field, "total_bytes")) return (long long)i.total_bytes;
    ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
    snprintf(res->message, sizeof res->message, "unknown model info field '%s'", field);
    return 0;
}
const char *ktqs_model_text(ktq_model *m, const char *field, ktqs_result *res) {
    ktq_model_info i;
    ktq_model_info_init(&i, KTQ_MODEL_INFO_VERSION);
    ktq_error *err = NULL;
    int st = ktq_model_get_info(&i, m, &err);
    ktqs_set(res, st, err);
    if (st != KTQ_OK) return "";
    if (!strcmp(field, "architecture")) return i.architecture;
    if (!strcmp(field, "model_type")) return i.model_type;
    if (!strcmp(field, "family")) return ktq_arch_family_name(i.family);
    if (!strcmp(field, "source_dtype")) return ktq_dtype_name(i.source_dtype);
    if (!strcmp(field, "notice")) return i.notice;
    ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
    snprintf(res->message, sizeof res->message, "unknown model info field '%s'", field);
    return "";
}

/* format: a ktq_format value (0 = KTQ_FORMAT_HF_BF16); numa_parts and
 * loose_files apply to the kt-kernel formats; weight_bits, group_size,
 * asymmetric, targets and ignore (newline-separated patterns; "" targets =
 * "Linear"; default_ignore = 1 keeps the library's default ignore list;
 * dtype_rounding = 1 matches llm-compressor run on a CPU, 0 on a GPU) to
 * compressed-tensors; gguf_type (a ktq_ggml_type, -1 = Q8_0) and
 * gguf_split_experts to GGUF, where out_dir is the file's path. */
ktq_writer *ktqs_writer_open(ktq_model *m, const char *out_dir, int format, unsigned long long max_shard_bytes,
                             int overwrite, int resume, int numa_parts, int loose_files, int weight_bits,
                             int group_size, int asymmetric, const char *targets, const char *ignore,
                             int default_ignore, int dtype_rounding, int gguf_type, int gguf_split_experts,
                             ktqs_result *res) {
    ktq_writer_options o;
    ktq_writer_options_init(&o, KTQ_WRITER_OPTIONS_VERSION);
    o.max_shard_bytes = max_shard_bytes;
    o.overwrite = overwrite;
    o.resume = resume;
    o.numa_parts = numa_parts;
    o.loose_files = loose_files;
    o.weight_bits = weight_bits;
    o.group_size = group_size;
    o.asymmetric = asymmetric;
    o.targets = targets && *targets ? targets : NULL;
    o.ignore = default_ignore ? NULL : (ignore ? ignore : "");
    o.ct_rounding = dtype_rounding ? KTQ_CT_ROUND_DTYPE : KTQ_CT_ROUND_FP32;
    if (gguf_type >= 0) o.gguf_type = gguf_type;
    o.gguf_split_experts = gguf_split_experts;
    ktq_writer *w = NULL;
    ktq_error *err = NULL;
    int st = ktq_writer_open(&w, m, out_dir, format ? (ktq_format)format : KTQ_FORMAT_HF_BF16, &o, &err);  /* before reading err: argument order is unspecified */
    ktqs_set(res, st, err);
    return w;
}
void ktqs_writer_free(ktq_writer *w) { ktq_writer_free(w); }

/* Blocks until the conversion ends; `token` may be cancelled from another thread. */
/* device: 0 = CPU, 1 = CUDA. */
void ktqs_write(ktq_model *m, ktq_writer *w, int threads, int device, ktqs_token *token, ktqs_result *res) {
    ktq_quantize_options q;
    ktq_quantize_options_init(&q, KTQ_QUANTIZE_OPTIONS_VERSION);
    q.threads = threads;
    q.device = (ktq_device)device;
    q.progress = ktqs_progress;
    q.payload = token;
    ktq_error *err = NULL;
    int st = ktq_write(m, &q, w, &err);  /* before reading err: argument order is unspecified */
    ktqs_set(res, st, err);
}

/* Reads a whole text file into a malloc'ed buffer (NULL + res on failure). */
static char *ktqs_read_text(const char *path, size_t *len, ktqs_result *res) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = (char *)malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        fclose(f);
        *len = (size_t)n;
        return buf;
    }
    if (f) fclose(f);
    free(buf);
    ktqs_set(res, KTQ_ERR_IO, NULL);
    snprintf(res->message, sizeof res->message, "%s: cannot read text file", path);
    return NULL;
}

/* Perplexity with ktq's native forward pass of m on the text in text_path,
 * tokenized with the tokenizer.json in tokenizer_path (a file or a model
 * folder): the first max_tokens tokens (0 = all) as windows of `window`. */
double ktqs_perplexity(ktq_model *m, const char *tokenizer_path, const char *text_path, int window,
                       unsigned long long max_tokens, ktqs_result *res) {
    size_t len = 0;
    char *text = ktqs_read_text(text_path, &len, res);
    if (!text) return 0;
    ktq_tokenizer *tok = NULL;
    ktq_error *err = NULL;
    int st = ktq_tokenizer_open(&tok, tokenizer_path, &err);
    ktq_eval_result r;
    memset(&r, 0, sizeof r);
    if (st == KTQ_OK) {
        ktq_eval_options o;
        ktq_eval_options_init(&o, KTQ_EVAL_OPTIONS_VERSION);
        o.window = window;
        o.max_tokens = max_tokens;
        st = ktq_eval_perplexity(&r, m, tok, text, len, &o, &err);
    }
    ktqs_set(res, st, err);
    ktq_tokenizer_free(tok);
    free(text);
    return r.perplexity;
}

/* GPTQ calibration samples from a dataset file (plain text or JSONL) with the
 * tokenizer in tokenizer_path; NULL + res on failure. */
ktq_calibration *ktqs_calibration_open(const char *tokenizer_path, const char *dataset, int samples, int seq_len,
                                       unsigned long long seed, ktqs_result *res) {
    ktq_tokenizer *tok = NULL;
    ktq_calibration *c = NULL;
    ktq_error *err = NULL;
    int st = ktq_tokenizer_open(&tok, tokenizer_path, &err);
    if (st == KTQ_OK) {
        ktq_calibration_options o;
        ktq_calibration_options_init(&o, KTQ_CALIBRATION_OPTIONS_VERSION);
        if (samples > 0) o.num_samples = samples;
        if (seq_len > 0) o.max_sequence_length = seq_len;
        o.seed = seed;
        st = ktq_calibration_open(&c, dataset, tok, &o, &err);
    }
    ktqs_set(res, st, err);
    ktq_tokenizer_free(tok);
    return c;
}
void ktqs_calibration_free(ktq_calibration *c) { ktq_calibration_free(c); }

/* ktqs_write with the GPTQ engine (compressed-tensors writers):
 * dampening_frac < 0 = the default 0.01; act_order_none / moe_hessian_all
 * select llm-compressor's alternatives. */
void ktqs_write_gptq(ktq_model *m, ktq_writer *w, int threads, ktq_calibration *c, double dampening_frac,
                     int act_order_none, int moe_hessian_all, ktqs_token *token, ktqs_result *res) {
    ktq_quantize_options q;
    ktq_quantize_options_init(&q, KTQ_QUANTIZE_OPTIONS_VERSION);
    q.engine = KTQ_ENGINE_GPTQ;
    q.threads = threads;
    q.calibration = c;
    if (dampening_frac >= 0) q.dampening_frac = dampening_frac;
    if (act_order_none) q.act_order = KTQ_ACT_ORDER_NONE;
    if (moe_hessian_all) q.moe_hessian = KTQ_MOE_HESSIAN_ALL;
    q.progress = ktqs_progress;
    q.payload = token;
    ktq_error *err = NULL;
    int st = ktq_write(m, &q, w, &err);  /* before reading err: argument order is unspecified */
    ktqs_set(res, st, err);
}

void ktqs_token_cancel(ktqs_token *t) { __atomic_store_n(&t->cancel, 1, __ATOMIC_RELEASE); }
unsigned long long ktqs_token_bytes_done(ktqs_token *t) { return __atomic_load_n(&t->bytes_done, __ATOMIC_ACQUIRE); }
unsigned long long ktqs_token_bytes_total(ktqs_token *t) { return __atomic_load_n(&t->bytes_total, __ATOMIC_RELAXED); }
int ktqs_token_layer(ktqs_token *t) { return __atomic_load_n(&t->layer, __ATOMIC_RELAXED); }
%}
