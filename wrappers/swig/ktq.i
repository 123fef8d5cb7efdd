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

/* A GPTQ accumulator that remembers its width, so that the array lengths
 * the managed side passes can be checked before C reads them. */
typedef struct ktqs_gptq {
    ktq_gptq *g;
    unsigned long long in_features;
} ktqs_gptq;

/* Array arguments: each language's .i maps these parameter names to its
 * arrays (Go slices, Java arrays), passing the element count beside the
 * pointer; *_IN arrays are only read, *_OUT arrays are written. The C side
 * checks every count against what it will touch. */
static int ktqs_check_count(ktqs_result *res, const char *what, size_t have, unsigned long long need) {
    if ((unsigned long long)have == need) return 1;
    ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
    snprintf(res->message, sizeof res->message, "%s: the array has %llu elements, %llu are needed", what,
             (unsigned long long)have, need);
    return 0;
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

static int ktqs_tensor_info(ktq_tensor_info *i, ktq_model *m, long long index, ktqs_result *res) {
    ktq_tensor_info_init(i, KTQ_TENSOR_INFO_VERSION);
    ktq_error *err = NULL;
    int st = index < 0 ? KTQ_ERR_INVALID_ARGUMENT : ktq_model_tensor_info(i, m, (size_t)index, &err);
    ktqs_set(res, st, err);
    return st == KTQ_OK;
}

static int ktqs_kt_part(ktq_kt_part_info *i, ktq_kt_output *o, long long index, ktqs_result *res) {
    ktq_kt_part_info_init(i, KTQ_KT_PART_INFO_VERSION);
    ktq_error *err = NULL;
    int st = index < 0 ? KTQ_ERR_INVALID_ARGUMENT : ktq_kt_output_part(i, o, (size_t)index, &err);
    ktqs_set(res, st, err);
    return st == KTQ_OK;
}

static int ktqs_ct_scheme(ktq_ct_scheme *s, int num_bits, int group_size, int symmetric, int bf16) {
    ktq_ct_scheme_init(s, KTQ_CT_SCHEME_VERSION);
    s->num_bits = num_bits;
    s->group_size = group_size;
    s->symmetric = symmetric;
    s->dtype = bf16 ? KTQ_DTYPE_BF16 : KTQ_DTYPE_F32;
    return 1;
}

static int ktqs_gptq_live(const ktqs_gptq *g, ktqs_result *res) {
    if (g) return 1;
    ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
    snprintf(res->message, sizeof res->message, "the GPTQ object is freed");
    return 0;
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
typedef struct ktq_kt_output ktq_kt_output;
typedef struct ktq_tokenizer ktq_tokenizer;
typedef struct ktqs_gptq ktqs_gptq;

%inline %{
const char *ktqs_version(void) { return ktq_version(); }

/* kt_experts (a kt-kernel output folder) and gguf_weights (a GGUF file) of
 * this checkpoint replace its weights when reading ("" = none). */
ktq_model *ktqs_open_model(const char *path, int threads, const char *kt_experts, const char *gguf_weights,
                           ktqs_result *res) {
    ktq_open_options o;
    ktq_open_options_init(&o, KTQ_OPEN_OPTIONS_VERSION);
    o.threads = threads;
    o.kt_experts = kt_experts && *kt_experts ? kt_experts : NULL;
    o.gguf_weights = gguf_weights && *gguf_weights ? gguf_weights : NULL;
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
 * dtype_rounding = 1 matches llm-compressor run on a CPU, 0 on a GPU;
 * mse_observer = 1 chooses scales with the MSE observer, KTQ_CT_OBSERVER_MSE) to
 * compressed-tensors; gguf_type (a ktq_ggml_type, -1 = Q8_0) and
 * gguf_split_experts to GGUF, where out_dir is the file's path; gguf_mix
 * (a mixture name such as "Q4_K_M", "" = none) instead of one gguf_type;
 * gguf_tokenizer_pre, gguf_imatrix and gguf_routing_stats ("" = none) and
 * gguf_source_sha256 as ktq_writer_options v5 has them. */
ktq_writer *ktqs_writer_open(ktq_model *m, const char *out_dir, int format, unsigned long long max_shard_bytes,
                             int overwrite, int resume, int numa_parts, int loose_files, int weight_bits,
                             int group_size, int asymmetric, const char *targets, const char *ignore,
                             int default_ignore, int dtype_rounding, int mse_observer, int gguf_type,
                             int gguf_split_experts,
                             const char *gguf_mix, const char *gguf_tokenizer_pre, const char *gguf_imatrix,
                             const char *gguf_routing_stats, int gguf_source_sha256, ktqs_result *res) {
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
    o.ct_observer = mse_observer ? KTQ_CT_OBSERVER_MSE : KTQ_CT_OBSERVER_MINMAX;
    if (gguf_type >= 0) o.gguf_type = gguf_type;
    o.gguf_split_experts = gguf_split_experts;
    o.gguf_mix = gguf_mix && *gguf_mix ? gguf_mix : NULL;
    o.gguf_tokenizer_pre = gguf_tokenizer_pre && *gguf_tokenizer_pre ? gguf_tokenizer_pre : NULL;
    o.gguf_imatrix = gguf_imatrix && *gguf_imatrix ? gguf_imatrix : NULL;
    o.gguf_routing_stats = gguf_routing_stats && *gguf_routing_stats ? gguf_routing_stats : NULL;
    o.gguf_source_sha256 = gguf_source_sha256 != 0;
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
 * select llm-compressor's alternatives; device as ktqs_write's;
 * max_host_memory: bytes of host memory calibration may hold (0 = no limit,
 * the CLI's --max-cpu-memory). */
void ktqs_write_gptq(ktq_model *m, ktq_writer *w, int threads, int device, ktq_calibration *c, double dampening_frac,
                     int act_order_none, int moe_hessian_all, unsigned long long max_host_memory, ktqs_token *token,
                     ktqs_result *res) {
    ktq_quantize_options q;
    ktq_quantize_options_init(&q, KTQ_QUANTIZE_OPTIONS_VERSION);
    q.engine = KTQ_ENGINE_GPTQ;
    q.threads = threads;
    q.device = (ktq_device)device;
    q.calibration = c;
    q.max_host_memory = max_host_memory;
    if (dampening_frac >= 0) q.dampening_frac = dampening_frac;
    if (act_order_none) q.act_order = KTQ_ACT_ORDER_NONE;
    if (moe_hessian_all) q.moe_hessian = KTQ_MOE_HESSIAN_ALL;
    q.progress = ktqs_progress;
    q.payload = token;
    ktq_error *err = NULL;
    int st = ktq_write(m, &q, w, &err);  /* before reading err: argument order is unspecified */
    ktqs_set(res, st, err);
}

/* ktqs_write with the AWQ engine (compressed-tensors and GGUF writers):
 * grid <= 0 = the default 20; activations_only = AutoAWQ's scaling instead of
 * duo scaling; clip = AutoAWQ's clipping search; moe_hessian_all = every
 * token alike for routed experts instead of the blend; device and max_host_memory
 * as ktqs_write_gptq's. */
void ktqs_write_awq(ktq_model *m, ktq_writer *w, int threads, int device, ktq_calibration *c, int grid,
                    int activations_only, int clip, int moe_hessian_all, unsigned long long max_host_memory,
                    ktqs_token *token, ktqs_result *res) {
    ktq_quantize_options q;
    ktq_quantize_options_init(&q, KTQ_QUANTIZE_OPTIONS_VERSION);
    q.engine = KTQ_ENGINE_AWQ;
    q.threads = threads;
    q.device = (ktq_device)device;
    q.calibration = c;
    q.max_host_memory = max_host_memory;
    if (grid > 0) q.awq_grid = grid;
    q.awq_duo_scaling = !activations_only;
    q.awq_clip = clip != 0;
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

/* ---- Tensors of a model ------------------------------------------------ */

long long ktqs_tensor_count(ktq_model *m) { return (long long)ktq_model_tensor_count(m); }

/* Index of tensor `name` (-1 + res when absent). */
long long ktqs_find_tensor(ktq_model *m, const char *name, ktqs_result *res) {
    size_t index = 0;
    ktq_error *err = NULL;
    int st = ktq_model_find_tensor(&index, m, name, &err);
    ktqs_set(res, st, err);
    return st == KTQ_OK ? (long long)index : -1;
}

/* field: "name", "file" or "dtype". */
const char *ktqs_tensor_text(ktq_model *m, long long index, const char *field, ktqs_result *res) {
    ktq_tensor_info i;
    if (!ktqs_tensor_info(&i, m, index, res)) return "";
    if (!strcmp(field, "name")) return i.name;
    if (!strcmp(field, "file")) return i.file;
    if (!strcmp(field, "dtype")) return ktq_dtype_name(i.dtype);
    ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
    snprintf(res->message, sizeof res->message, "unknown tensor info field '%s'", field);
    return "";
}
/* field: "ndim", "nbytes", "layer", "numel" or "dim0".."dim7". */
long long ktqs_tensor_num(ktq_model *m, long long index, const char *field, ktqs_result *res) {
    ktq_tensor_info i;
    if (!ktqs_tensor_info(&i, m, index, res)) return 0;
    if (!strcmp(field, "ndim")) return i.ndim;
    if (!strcmp(field, "nbytes")) return (long long)i.nbytes;
    if (!strcmp(field, "layer")) return i.layer;
    if (!strcmp(field, "numel")) {
        long long n = 1;
        for (int d = 0; d < i.ndim; ++d) n *= i.shape[d];
        return n;
    }
    if (!strncmp(field, "dim", 3) && field[3] >= '0' && field[3] <= '7' && !field[4]) {
        int d = field[3] - '0';
        return d < i.ndim ? i.shape[d] : 0;
    }
    ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
    snprintf(res->message, sizeof res->message, "unknown tensor info field '%s'", field);
    return 0;
}

/* Tensor `name` as float32 (FP8 dequantized by its block scales) into an
 * array of exactly numel elements. */
void ktqs_read_tensor_f32(ktq_model *m, const char *name, float *F32_OUT, size_t F32_OUT_N, ktqs_result *res) {
    long long index = ktqs_find_tensor(m, name, res);
    if (index < 0) return;
    long long numel = ktqs_tensor_num(m, index, "numel", res);
    if (res->status != KTQ_OK || !ktqs_check_count(res, name, F32_OUT_N, (unsigned long long)numel)) return;
    ktq_error *err = NULL;
    int st = ktq_model_read_tensor(F32_OUT, F32_OUT_N * sizeof(float), m, name, KTQ_DTYPE_F32, &err);
    ktqs_set(res, st, err);
}

/* Shape of routed expert `expert`'s matrix `proj` (0 gate, 1 up, 2 down) in `layer`:
 * which = 0 rows (out features), 1 cols (in features). */
long long ktqs_expert_dim(ktq_model *m, int layer, int expert, int proj, int which, ktqs_result *res) {
    int64_t rows = 0, cols = 0;
    ktq_error *err = NULL;
    int st = ktq_model_expert_shape(&rows, &cols, m, layer, expert, (ktq_expert_proj)proj, &err);
    ktqs_set(res, st, err);
    return st != KTQ_OK ? 0 : (long long)(which ? cols : rows);
}
void ktqs_read_expert_f32(ktq_model *m, int layer, int expert, int proj, float *F32_OUT, size_t F32_OUT_N,
                          ktqs_result *res) {
    long long rows = ktqs_expert_dim(m, layer, expert, proj, 0, res);
    if (res->status != KTQ_OK) return;
    long long cols = ktqs_expert_dim(m, layer, expert, proj, 1, res);
    if (res->status != KTQ_OK || !ktqs_check_count(res, "expert matrix", F32_OUT_N, (unsigned long long)(rows * cols)))
        return;
    ktq_error *err = NULL;
    int st = ktq_model_read_expert(F32_OUT, F32_OUT_N * sizeof(float), m, layer, expert, (ktq_expert_proj)proj,
                                   KTQ_DTYPE_F32, &err);
    ktqs_set(res, st, err);
}

/* ---- kt-kernel outputs (merged or loose) -------------------------------- */

ktq_kt_output *ktqs_kt_open(const char *dir, ktqs_result *res) {
    ktq_kt_output *o = NULL;
    ktq_error *err = NULL;
    int st = ktq_kt_output_open(&o, dir, &err);
    ktqs_set(res, st, err);
    return o;
}
void ktqs_kt_free(ktq_kt_output *o) { ktq_kt_output_free(o); }
long long ktqs_kt_part_count(ktq_kt_output *o) { return (long long)ktq_kt_output_part_count(o); }
int ktqs_kt_is_merged(ktq_kt_output *o) { return ktq_kt_output_is_merged(o); }

const char *ktqs_kt_part_name(ktq_kt_output *o, long long index, ktqs_result *res) {
    ktq_kt_part_info i;
    return ktqs_kt_part(&i, o, index, res) ? i.name : "";
}
/* field: "layer", "expert", "proj" (0 gate, 1 up, 2 down), "part", "bits"
 * (4 or 8), "rows", "cols" or "packed_bytes". */
long long ktqs_kt_part_num(ktq_kt_output *o, long long index, const char *field, ktqs_result *res) {
    ktq_kt_part_info i;
    if (!ktqs_kt_part(&i, o, index, res)) return 0;
    if (!strcmp(field, "layer")) return i.layer;
    if (!strcmp(field, "expert")) return i.expert;
    if (!strcmp(field, "proj")) return (long long)i.proj;
    if (!strcmp(field, "part")) return i.part;
    if (!strcmp(field, "bits")) return i.method == KTQ_FORMAT_KT_AMXINT4 ? 4 : 8;
    if (!strcmp(field, "rows")) return (long long)i.rows;
    if (!strcmp(field, "cols")) return (long long)i.cols;
    if (!strcmp(field, "packed_bytes")) return (long long)i.packed_bytes;
    ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
    snprintf(res->message, sizeof res->message, "unknown kt part field '%s'", field);
    return 0;
}
/* The packed weight bytes (packed_bytes) and float32 scales (rows) of a part. */
void ktqs_kt_read(ktq_kt_output *o, long long index, void *BYTES_OUT, size_t BYTES_OUT_N, float *F32_OUT,
                  size_t F32_OUT_N, ktqs_result *res) {
    ktq_kt_part_info i;
    if (!ktqs_kt_part(&i, o, index, res)) return;
    if (!ktqs_check_count(res, "packed weights", BYTES_OUT_N, i.packed_bytes) ||
        !ktqs_check_count(res, "scales", F32_OUT_N, i.rows))
        return;
    ktq_error *err = NULL;
    int st = ktq_kt_output_read(BYTES_OUT, BYTES_OUT_N, F32_OUT, F32_OUT_N, o, (size_t)index, &err);
    ktqs_set(res, st, err);
}
/* rows x cols dequantized weights of a part. */
void ktqs_kt_dequantize(ktq_kt_output *o, long long index, float *F32_OUT, size_t F32_OUT_N, ktqs_result *res) {
    ktq_kt_part_info i;
    if (!ktqs_kt_part(&i, o, index, res) || !ktqs_check_count(res, i.name, F32_OUT_N, i.rows * i.cols)) return;
    ktq_error *err = NULL;
    int st = ktq_kt_output_dequantize(F32_OUT, F32_OUT_N, o, (size_t)index, &err);
    ktqs_set(res, st, err);
}
/* Loose .kt files in loose_dir -> merged safetensors in out_dir; with
 * `model` (may be NULL) also its other tensors, config and tokenizer. */
void ktqs_kt_merge(const char *out_dir, const char *loose_dir, ktq_model *model, int overwrite, ktqs_result *res) {
    ktq_writer_options o;
    ktq_writer_options_init(&o, KTQ_WRITER_OPTIONS_VERSION);
    o.overwrite = overwrite;
    ktq_error *err = NULL;
    int st = ktq_kt_merge(out_dir, loose_dir, model, &o, &err);
    ktqs_set(res, st, err);
}

/* ---- Tokenizer ----------------------------------------------------------- */

ktq_tokenizer *ktqs_tokenizer_open(const char *path, ktqs_result *res) {
    ktq_tokenizer *t = NULL;
    ktq_error *err = NULL;
    int st = ktq_tokenizer_open(&t, path, &err);
    ktqs_set(res, st, err);
    return t;
}
void ktqs_tokenizer_free(ktq_tokenizer *t) { ktq_tokenizer_free(t); }
long long ktqs_tokenizer_vocab_size(ktq_tokenizer *t) { return (long long)ktq_tokenizer_vocab_size(t); }
/* Encodes text_len bytes of UTF-8 into ids; returns the number of ids. When
 * it is larger than the array, nothing is written and res says
 * KTQ_ERR_BUFFER_TOO_SMALL: call again with that many. */
long long ktqs_tokenizer_encode(ktq_tokenizer *t, void *BYTES_IN, size_t BYTES_IN_N, int32_t *I32_OUT,
                                size_t I32_OUT_N, ktqs_result *res) {
    size_t count = 0;
    ktq_error *err = NULL;
    int st = ktq_tokenizer_encode(I32_OUT, I32_OUT_N, &count, t, BYTES_IN ? (const char *)BYTES_IN : "", BYTES_IN_N,
                                  &err);
    ktqs_set(res, st, err);
    return (long long)count;
}

/* ---- ggml blocks ------------------------------------------------------- */

const char *ktqs_ggml_type_name(int type) { return ktq_ggml_type_name((ktq_ggml_type)type); }
long long ktqs_ggml_block_size(int type) { return (long long)ktq_ggml_block_size((ktq_ggml_type)type); }
long long ktqs_ggml_type_size(int type) { return (long long)ktq_ggml_type_size((ktq_ggml_type)type); }
/* Bytes of n values of `type` (0 + res when n is not a whole number of blocks). */
long long ktqs_ggml_bytes(int type, long long n, ktqs_result *res) {
    long long block = ktqs_ggml_block_size(type), size = ktqs_ggml_type_size(type);
    if (!block || n < 0 || n % block) {
        ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
        snprintf(res->message, sizeof res->message, "%lld values are not a whole number of %s blocks (%lld values)",
                 n, ktq_ggml_type_name((ktq_ggml_type)type), block);
        return 0;
    }
    ktqs_set(res, KTQ_OK, NULL);
    return n / block * size;
}
void ktqs_ggml_quantize(int type, float *F32_IN, size_t F32_IN_N, void *BYTES_OUT, size_t BYTES_OUT_N,
                        ktqs_result *res) {
    long long need = ktqs_ggml_bytes(type, (long long)F32_IN_N, res);
    if (res->status != KTQ_OK || !ktqs_check_count(res, "quantized blocks", BYTES_OUT_N, (unsigned long long)need)) return;
    ktq_error *err = NULL;
    int st = ktq_quantize_tensor(BYTES_OUT, BYTES_OUT_N, F32_IN, F32_IN_N, (ktq_ggml_type)type, &err);
    ktqs_set(res, st, err);
}
/* ktq_quantize_rows: rows of n_per_row values (F32_IN) with per-column
 * importance (F32_IN2, n_per_row values), as llama-quantize with an imatrix. */
void ktqs_ggml_quantize_rows(int type, float *F32_IN, size_t F32_IN_N, long long n_per_row, float *F32_IN2,
                             size_t F32_IN2_N, void *BYTES_OUT, size_t BYTES_OUT_N, ktqs_result *res) {
    if (n_per_row <= 0 || F32_IN_N % (size_t)n_per_row != 0) {
        ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
        snprintf(res->message, sizeof res->message, "%llu values are not whole rows of %lld",
                 (unsigned long long)F32_IN_N, n_per_row);
        return;
    }
    if (!ktqs_check_count(res, "importance values (one per column)", F32_IN2_N, (unsigned long long)n_per_row)) return;
    long long need = ktqs_ggml_bytes(type, (long long)F32_IN_N, res);
    if (res->status != KTQ_OK || !ktqs_check_count(res, "quantized blocks", BYTES_OUT_N, (unsigned long long)need)) return;
    ktq_error *err = NULL;
    int st = ktq_quantize_rows(BYTES_OUT, BYTES_OUT_N, F32_IN, F32_IN_N / (size_t)n_per_row, (size_t)n_per_row, F32_IN2,
                               (ktq_ggml_type)type, &err);
    ktqs_set(res, st, err);
}
void ktqs_ggml_dequantize(int type, void *BYTES_IN, size_t BYTES_IN_N, float *F32_OUT, size_t F32_OUT_N,
                          ktqs_result *res) {
    long long need = ktqs_ggml_bytes(type, (long long)F32_OUT_N, res);
    if (res->status != KTQ_OK || !ktqs_check_count(res, "quantized blocks", BYTES_IN_N, (unsigned long long)need)) return;
    ktq_error *err = NULL;
    int st = ktq_dequantize_tensor(F32_OUT, F32_OUT_N, BYTES_IN, BYTES_IN_N, (ktq_ggml_type)type, &err);
    ktqs_set(res, st, err);
}

/* ---- System ---------------------------------------------------------------- */

/* field: "numa_nodes", "cores", "pus", "avx2", "avx512f", "avx512_vnni",
 * "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "cuda_built",
 * "cuda_devices". */
long long ktqs_system_num(const char *field, ktqs_result *res) {
    ktq_system_info i;
    ktq_system_info_init(&i, KTQ_SYSTEM_INFO_VERSION);
    ktq_error *err = NULL;
    int st = ktq_system_get_info(&i, &err);
    ktqs_set(res, st, err);
    if (st != KTQ_OK) return 0;
    struct { const char *name; int value; } fields[] = {
        {"numa_nodes", i.numa_nodes}, {"cores", i.cores}, {"pus", i.pus}, {"avx2", i.avx2},
        {"avx512f", i.avx512f}, {"avx512_vnni", i.avx512_vnni}, {"avx512_bf16", i.avx512_bf16},
        {"amx_tile", i.amx_tile}, {"amx_int8", i.amx_int8}, {"amx_bf16", i.amx_bf16},
        {"cuda_built", i.cuda_built}, {"cuda_devices", i.cuda_devices}};
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; ++k)
        if (!strcmp(field, fields[k].name)) return fields[k].value;
    ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
    snprintf(res->message, sizeof res->message, "unknown system info field '%s'", field);
    return 0;
}
/* field: "cpu_model" or "cuda_device0"; copied into a static buffer per field. */
const char *ktqs_system_text(const char *field, ktqs_result *res) {
    static __thread char text[128];
    ktq_system_info i;
    ktq_system_info_init(&i, KTQ_SYSTEM_INFO_VERSION);
    ktq_error *err = NULL;
    int st = ktq_system_get_info(&i, &err);
    ktqs_set(res, st, err);
    if (st != KTQ_OK) return "";
    if (!strcmp(field, "cpu_model")) snprintf(text, sizeof text, "%s", i.cpu_model);
    else if (!strcmp(field, "cuda_device0")) snprintf(text, sizeof text, "%s", i.cuda_device0);
    else {
        ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
        snprintf(res->message, sizeof res->message, "unknown system info field '%s'", field);
        return "";
    }
    return text;
}

/* ---- GPTQ for a forward pass of the caller's (ktq/gptq.h) --------------- */

ktqs_gptq *ktqs_gptq_new(unsigned long long in_features, ktqs_result *res) {
    ktqs_gptq *g = (ktqs_gptq *)calloc(1, sizeof *g);
    if (!g) {
        ktqs_set(res, KTQ_ERR_NO_MEMORY, NULL);
        return NULL;
    }
    ktq_error *err = NULL;
    int st = ktq_gptq_new(&g->g, in_features, &err);
    ktqs_set(res, st, err);
    if (st != KTQ_OK) {
        free(g);
        return NULL;
    }
    g->in_features = in_features;
    return g;
}
void ktqs_gptq_free(ktqs_gptq *g) {
    if (!g) return;
    ktq_gptq_free(g->g);
    free(g);
}
/* Adds rows of in_features inputs each (the array holds a whole number of rows). */
void ktqs_gptq_add_batch(ktqs_gptq *g, float *F32_IN, size_t F32_IN_N, ktqs_result *res) {
    if (!ktqs_gptq_live(g, res)) return;
    if (!g->in_features || F32_IN_N % g->in_features) {
        ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
        snprintf(res->message, sizeof res->message, "%llu inputs are not a whole number of rows of %llu",
                 (unsigned long long)F32_IN_N, g->in_features);
        return;
    }
    ktq_error *err = NULL;
    int st = ktq_gptq_add_batch(g->g, F32_IN, F32_IN_N / g->in_features, &err);
    ktqs_set(res, st, err);
}
unsigned long long ktqs_gptq_rows_seen(ktqs_gptq *g, ktqs_result *res) {
    if (!ktqs_gptq_live(g, res)) return 0;
    uint64_t rows = 0;
    ktq_error *err = NULL;
    int st = ktq_gptq_hessian(NULL, 0, &rows, g->g, &err);
    ktqs_set(res, st, err);
    return rows;
}

/* compressed-tensors sizes of a [rows, cols] weight: which = 0 packed int32
 * words, 1 scales, 2 zero-point int32 words. */
long long ktqs_ct_size(unsigned long long rows, unsigned long long cols, int num_bits, int group_size, int symmetric,
                       int which, ktqs_result *res) {
    ktq_ct_scheme s;
    ktqs_ct_scheme(&s, num_bits, group_size, symmetric, 0);
    size_t sizes[3] = {0, 0, 0};
    ktq_error *err = NULL;
    int st = ktq_ct_sizes(&sizes[0], &sizes[1], &sizes[2], rows, cols, &s, &err);
    ktqs_set(res, st, err);
    return st == KTQ_OK && which >= 0 && which < 3 ? (long long)sizes[which] : 0;
}
/* GPTQ of `weights` ([rows, in_features] float32; with bf16 = 1 they must be
 * BF16 values, and the scales are rounded to BF16 as a BF16 model's are)
 * into compressed-tensors arrays sized by ktqs_ct_size; `dequantized`
 * (rows * in_features, or empty) receives what the codes stand for. Returns
 * the GPTQ loss; *rtn_fallback (an int array of 1, or empty) is set to 1 when
 * the Hessian was not positive definite and plain rounding was used.
 * dampening_frac < 0 = default; act_order_none selects natural order;
 * device 1 = CUDA device cuda_device. */
double ktqs_gptq_quantize(ktqs_gptq *g, float *F32_IN, size_t F32_IN_N, int num_bits, int group_size, int symmetric,
                          int bf16, double dampening_frac, int act_order_none, int device, int cuda_device,
                          int32_t *I32_OUT, size_t I32_OUT_N, float *F32_OUT, size_t F32_OUT_N, int32_t *I32_OUT2,
                          size_t I32_OUT2_N, float *F32_OUT2, size_t F32_OUT2_N, int32_t *I32_OUT3, size_t I32_OUT3_N,
                          ktqs_result *res) {
    double loss = 0;
    if (!ktqs_gptq_live(g, res)) return 0;
    if (!g->in_features || F32_IN_N % g->in_features) {
        ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
        snprintf(res->message, sizeof res->message, "%llu weights are not a whole number of rows of %llu",
                 (unsigned long long)F32_IN_N, g->in_features);
        return 0;
    }
    unsigned long long rows = F32_IN_N / g->in_features;
    ktq_ct_scheme s;
    ktqs_ct_scheme(&s, num_bits, group_size, symmetric, bf16);
    size_t packed = 0, scales = 0, zeros = 0;
    ktq_error *err = NULL;
    int st = ktq_ct_sizes(&packed, &scales, &zeros, rows, g->in_features, &s, &err);
    if (st != KTQ_OK) {
        ktqs_set(res, st, err);
        return 0;
    }
    if (!ktqs_check_count(res, "packed weights", I32_OUT_N, packed) || !ktqs_check_count(res, "scales", F32_OUT_N, scales) ||
        !ktqs_check_count(res, "zero points", I32_OUT2_N, zeros) ||
        (F32_OUT2_N && !ktqs_check_count(res, "dequantized weights", F32_OUT2_N, F32_IN_N)) ||
        (I32_OUT3_N && !ktqs_check_count(res, "rtn_fallback", I32_OUT3_N, 1)))
        return 0;
    /* BF16: the weights and scales travel as bf16 bits; float32 holds every bf16 value exactly. */
    uint16_t *w16 = NULL, *s16 = NULL;
    if (bf16) {
        w16 = (uint16_t *)malloc(F32_IN_N * sizeof *w16);
        s16 = (uint16_t *)malloc((scales ? scales : 1) * sizeof *s16);
        if (!w16 || !s16) {
            free(w16);
            free(s16);
            ktqs_set(res, KTQ_ERR_NO_MEMORY, NULL);
            return 0;
        }
        for (size_t k = 0; k < F32_IN_N; ++k) {
            uint32_t bits;
            memcpy(&bits, &F32_IN[k], 4);
            if (bits & 0xFFFFu) {
                free(w16);
                free(s16);
                ktqs_set(res, KTQ_ERR_INVALID_ARGUMENT, NULL);
                snprintf(res->message, sizeof res->message,
                         "weight %llu is not a BF16 value (bf16 = 1 needs weights read as BF16)", (unsigned long long)k);
                return 0;
            }
            w16[k] = (uint16_t)(bits >> 16);
        }
    }
    ktq_gptq_options o;
    ktq_gptq_options_init(&o, KTQ_GPTQ_OPTIONS_VERSION);
    if (dampening_frac >= 0) o.dampening_frac = dampening_frac;
    if (act_order_none) o.act_order = KTQ_ACT_ORDER_NONE;
    o.device = (ktq_device)device;
    o.cuda_device = cuda_device;
    int fallback = 0;
    st = ktq_gptq_quantize(I32_OUT, I32_OUT_N, bf16 ? (void *)s16 : (void *)F32_OUT, scales, I32_OUT2, I32_OUT2_N,
                           F32_OUT2_N ? F32_OUT2 : NULL, &loss, &fallback, g->g, bf16 ? (const void *)w16 : F32_IN,
                           rows, &s, &o, &err);
    if (st == KTQ_OK && bf16)
        for (size_t k = 0; k < scales; ++k) {
            uint32_t bits = (uint32_t)s16[k] << 16;
            memcpy(&F32_OUT[k], &bits, 4);
        }
    if (I32_OUT3_N) I32_OUT3[0] = fallback;
    free(w16);
    free(s16);
    ktqs_set(res, st, err);
    return loss;
}
%}
