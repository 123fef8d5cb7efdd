// GPTQ (Frantar et al., 2022) for the compressed-tensors integer schemes,
// following llm-compressor 0.14's GPTQModifier: scales and zero points come
// first from the same min-max observer as the RTN engine (ct_rtn_math.h, on
// the original weights), then the columns are quantized one by one in blocks
// of `block_size`, each column's rounding error spread over the columns not
// yet quantized through the upper Cholesky factor of the damped inverse
// Hessian (the error of a column is w - q with q what its code stands for in
// the model dtype, as llm-compressor 0.14's block update computes it). Rows
// are independent given the Hessian, so they are processed in
// fixed chunks on the pool: the result never depends on the thread count.
//
// With an identity-like Hessian (no information) the error is never
// spread and the codes are the RTN engine's (float32 rounding).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/ct_rtn.h"
#include "quant/ct_rtn_math.h"

namespace ktq {

class ThreadPool;

namespace gptq {

enum class ActOrder {
    None,    // columns in their natural order
    Static,  // by descending Hessian diagonal; groups keep their natural columns
             // (llm-compressor's "static" / "weight"; no g_idx needed)
};

struct Options {
    ct::Scheme scheme;
    int block_size = 128;
    double dampening_frac = 0.01;  // of the mean Hessian diagonal, added to the diagonal
    ActOrder act_order = ActOrder::None;
};

// Sum of x x^T over every observed input row (float32), and the row count.
// H = 2 / rows * sum, as llm-compressor normalises it.
class Hessian {
public:
    explicit Hessian(int64_t cols = 0) : cols_(cols), sum_(static_cast<size_t>(cols * cols), 0.0f) {}
    int64_t cols() const { return cols_; }
    uint64_t rows() const { return rows_; }
    // x: [n, cols]
    void add(const float *x, int64_t n, ThreadPool &pool);
    // Adds another accumulator's sums (the same inputs seen elsewhere).
    void merge(const Hessian &other);
    // 2 / rows * sum, [cols, cols] (all zeros when nothing was observed).
    std::vector<float> normalized() const;
    const std::vector<float> &sum() const { return sum_; }

private:
    int64_t cols_ = 0;
    uint64_t rows_ = 0;
    std::vector<float> sum_;
};

struct Result {
    std::vector<int8_t> codes;   // [rows, cols] signed codes, natural column order
    std::vector<float> scales;   // [rows, groups], values of scheme.dtype
    std::vector<int8_t> zero_points;  // [rows, groups] (asymmetric), else empty
    std::vector<float> dequantized;   // [rows, cols]: (code - zp) * scale in scheme.dtype
    double loss = 0;             // sum over rows of sum_i ((w - q) / d_i)^2 / 2
    bool rtn_fallback = false;   // the damped Hessian was not positive definite
};

// What GPTQ needs from a Hessian, computed once and shared by every Linear
// that reads the same inputs (q/k/v, an expert's gate/up): dead columns,
// column order, and the upper Cholesky factor of the damped inverse.
struct Factor {
    int64_t cols = 0;
    std::vector<uint8_t> dead;    // [cols]
    std::vector<int64_t> perm;    // quantization order -> column
    std::vector<float> hinv;      // [cols, cols], in quantization order
    bool rtn_fallback = false;
};
Factor factorize(const std::vector<float> &h, int64_t cols, const Options &opts);

// The parts of factorize() and quantize() that do not depend on where the
// arithmetic runs, shared with the CUDA engine (cuda/gptq_cuda.h) so both
// devices make the same decisions.
struct FactorPlan {
    std::vector<uint8_t> dead;   // [cols]: zero diagonal, the column is ignored
    std::vector<int64_t> perm;   // quantization order -> column
    double damp = 0;             // added to the diagonal
};
// diag: the normalized Hessian's diagonal (float32 values, as doubles).
FactorPlan plan_factor(const std::vector<double> &diag, const Options &opts);
// The observer on the original weights: one scale (and zero point) per row
// and group, [rows, groups], as the RTN quantizer chooses them (ct_rtn.h;
// the MSE observer's search spread over `pool` when given).
std::vector<ct::math::GroupParams> weight_params(const float *w, int64_t rows, int64_t cols, const ct::Scheme &s,
                                                 ThreadPool *pool = nullptr);
// Checks the scheme, the shape and the block size for quantize().
void check_problem(int64_t rows, int64_t cols, const Options &opts);
// Fills r.scales, r.zero_points and r.dequantized from r.codes.
void finish(Result &r, const std::vector<ct::math::GroupParams> &params, int64_t rows, int64_t cols,
            const ct::Scheme &s);

// Quantizes w ([rows, cols], values of scheme.dtype as floats) with a
// factorized normalized Hessian. Throws KTQ_ERR_INVALID_ARGUMENT for shapes
// the scheme cannot take.
Result quantize(const float *w, int64_t rows, int64_t cols, const Factor &f, const Options &opts, ThreadPool &pool);
// Both steps.
Result quantize(const float *w, int64_t rows, int64_t cols, const std::vector<float> &h, const Options &opts,
                ThreadPool &pool);

}  // namespace gptq
}  // namespace ktq
