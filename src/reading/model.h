// Model - an opened checkpoint: config, tensors, detected architecture, and
// the one place tensor data is turned into F32/BF16 (including block-FP8
// dequantization). Engines and the C API read through it.
//
// Immutable after construction; every const method is safe from many threads.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "ktq/model.h"
#include "quant/ct_rtn.h"
#include "reading/architecture.h"
#include "reading/checkpoint.h"
#include "reading/gguf_file.h"
#include "reading/kt_output.h"
#include "reading/model_config.h"
#include "runtime/thread_pool.h"

namespace ktq {

// A tensor seen as a row-major matrix [rows, cols] (1-D tensors are one row;
// N-D tensors are [shape[0] * ... * shape[N-2], shape[N-1]]).
struct MatrixView {
    std::string tensor;
    uint64_t row_begin = 0;  // first row of this view inside the tensor
    uint64_t rows = 0;
    uint64_t cols = 0;
};

class Model {
public:
    Model(const std::string &path, const ktq_open_options &opts);

    const ModelConfig &config() const { return config_; }
    const Checkpoint &checkpoint() const { return *checkpoint_; }
    const Architecture &arch() const { return arch_; }
    ThreadPool &pool() const { return *pool_; }
    ktq_dtype source_dtype() const { return source_dtype_; }
    int fp8_block_rows() const { return block_rows_; }
    int fp8_block_cols() const { return block_cols_; }

    // The whole tensor as a matrix.
    MatrixView matrix(const std::string &tensor) const;
    // One routed expert's matrix [rows = out features, cols = in features].
    MatrixView expert(int layer, int expert, ktq_expert_proj proj) const;

    // True for FP8 block scales (`*.weight_scale_inv`) that belong to an FP8
    // weight: they are folded into that weight by read_rows().
    bool is_fp8_scale(const std::string &tensor) const;

    // Converts rows [first, first + count) of `view` into `out` (F32 or BF16)
    // at `dst`, on the calling thread.
    void read_rows(const MatrixView &view, uint64_t first, uint64_t count, ktq_dtype out, void *dst) const;
    // The whole view, spread over the pool.
    void read(const MatrixView &view, ktq_dtype out, void *dst) const;
    // Bytes stored for `tensor`, its FP8 block scale included.
    uint64_t stored_bytes(const std::string &tensor) const;
    // Bytes stored for one routed expert's matrix (its share of a fused tensor).
    uint64_t expert_bytes(int layer, int expert, ktq_expert_proj proj) const;
    // Lets the kernel drop the input pages of `tensor` (and its FP8 scale).
    void release(const std::string &tensor) const;

    // True for a weight stored compressed-tensors "pack-quantized" (read as
    // (code - zero point) * scale in the scale's dtype, as compressed-tensors
    // decompresses it) or AutoAWQ GEMM-packed (likewise, as AutoAWQ does).
    bool is_packed(const std::string &tensor) const { return packed_.count(tensor) != 0; }
    // The stored parts of an AutoAWQ weight ("X.weight" of an AWQ
    // checkpoint), or false when `tensor` is not one.
    struct AwqStored {
        const TensorRef *qweight = nullptr, *qzeros = nullptr, *scales = nullptr;
        uint64_t rows = 0, cols = 0, group = 0;
    };
    bool awq_stored(const std::string &tensor, AwqStored *out) const;
    // True when a kt-kernel output's dequantized expert replaces `view`
    // (ktq_open_options.kt_experts).
    bool is_kt_expert(const MatrixView &view) const { return kt_.count({view.tensor, view.row_begin}) != 0; }
    // Weights read from a GGUF file instead (ktq_open_options.gguf_weights); 0 without one.
    size_t gguf_weight_count() const { return gguf_.size(); }

private:
    struct PackedWeight {
        const TensorRef *packed = nullptr, *scale = nullptr, *zero_point = nullptr;
        ct::Scheme scheme;
        uint64_t rows = 0, cols = 0;
        // AutoAWQ's GEMM layout instead of compressed-tensors': packed = qweight
        // [cols, rows / 8], zero_point = qzeros [groups, rows / 8], scale =
        // scales [groups, rows], nibbles of a word in AWQ's interleaved order.
        bool awq = false;
    };
    // config.json's quantization_config (or text_config's); only when quant_method is set.
    const nlohmann::ordered_json &quantization_config_json() const;
    void open_packed_weights();
    // AutoAWQ checkpoints (quantization_config.quant_method "awq", version
    // "gemm"): each X.weight becomes a virtual tensor, read as
    // (q - z) * scale in the scales' dtype, as AutoAWQ dequantizes it.
    void open_awq_weights();
    void read_awq_rows(const PackedWeight &w, uint64_t first, uint64_t count, ktq_dtype out, void *dst) const;
    // The routed experts of a kt-kernel output folder, over the checkpoint's.
    void open_kt_experts(const std::string &dir);
    struct KtExpert {
        std::vector<const KtPart *> parts;  // NUMA parts in order
        bool split_cols = false;            // down: parts split the input features; gate/up: the rows
        uint64_t rows = 0, cols = 0;
    };
    void read_kt_rows(const KtExpert &e, uint64_t first, uint64_t count, ktq_dtype out, void *dst) const;
    // The weights of a GGUF file, over the checkpoint's.
    void open_gguf_weights(const std::string &path);
    struct GgufWeight {
        const GgufFile::Tensor *tensor = nullptr;
        uint64_t first_row = 0;  // a stacked expert's rows start at expert * rows
        int permute_heads = 0;   // llama's Q/K: rows interleaved per head in the file
        uint64_t rows = 0;
        // DeepSeek's kv_b_proj, split by llama.cpp into attn_k_b (`tensor`, each head's
        // nope rows transposed) and attn_v_b (`value`, each head's v rows).
        const GgufFile::Tensor *value = nullptr;
        uint64_t nope = 0, v = 0;
    };
    void read_gguf_rows(const GgufWeight &w, uint64_t first, uint64_t count, ktq_dtype out, void *dst) const;
    void read_packed_rows(const PackedWeight &w, uint64_t first, uint64_t count, ktq_dtype out, void *dst) const;
    const TensorRef *fp8_scale_of(const std::string &tensor) const;
    void check_not_quantized() const;
    void check_fp8_scales() const;

    ModelConfig config_;
    std::unique_ptr<Checkpoint> checkpoint_;
    Architecture arch_;
    std::unique_ptr<ThreadPool> pool_;
    ktq_dtype source_dtype_ = KTQ_DTYPE_UNKNOWN;
    int block_rows_ = 0, block_cols_ = 0;
    std::map<std::string, PackedWeight> packed_;  // "X.weight" -> its stored parts
    std::unique_ptr<KtOutput> kt_output_;
    std::map<std::pair<std::string, uint64_t>, KtExpert> kt_;  // (tensor, first row) -> its kt parts
    std::unique_ptr<GgufFile> gguf_file_;
    std::map<std::pair<std::string, uint64_t>, GgufWeight> gguf_;  // (tensor, first row) -> its GGUF rows
};

}  // namespace ktq
