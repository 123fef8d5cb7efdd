// AWQ (Lin et al., 2023): activation-aware per-input-channel scales, as
// llm-compressor 0.14's AWQModifier searches them. For a group of Linears
// that read the same input x (the "balance" layers of one mapping: q/k/v
// after the input norm, gate/up after the post-attention norm, down after
// up, o after v), scales s per input channel are tried from a grid:
//   duo scaling (default): first s = 1 (plain round to nearest), then
//     r = i / (grid - 2), i = 0 .. grid - 2:
//     s = max(x_mean^r / (w_mean^(1-r) + 1e-4), 1e-4)
//   activations only: r = i / (grid - 1), i = 0 .. grid - 1: s = max(x_mean^r, 1e-4)
//   then s /= sqrt(max(s) * min(s)); non-finite entries -> 1
// where x_mean is the mean |x| of each channel over the calibration tokens
// and w_mean the mean of |w| / (max |w| of its quantization group + 1e-6)
// over every row of the quantized balance layers. The chosen s minimises the
// caller's loss: the mean squared error of the mapping's parent module
// (the attention block, the MLP / MoE block, or the single Linear) when the
// balance layers compute with Q(W s) / s instead of W, Q the output's
// quantizer (RoundTrip: the compressed-tensors round to nearest of ct_rtn.h,
// W s and Q(W s) / s rounded to the model dtype as torch computes them in a
// BF16/F16 model; or a ggml block type of quant/ggml_blocks.h, in float32
// as llama.cpp quantizes). The caller then folds s into the preceding norm or Linear
// (divides its weight by s) and keeps W s in the balance layers.
//
// Every loss sums in a fixed order, so the choice never depends on the
// thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "quant/ct_rtn.h"
#include "quant/ggml_blocks.h"

namespace ktq {

class MatmulBackend;

class ThreadPool;

namespace awq {

struct Options {
    int grid = 20;
    bool duo_scaling = true;
};

// How a balance layer's weight will be quantized, as the search needs it:
// exactly one of `ct` (a compressed-tensors scheme) or `ggml` (a ggml block
// type, row by row).
struct RoundTrip {
    const ct::Scheme *ct = nullptr;
    const GgmlTypeTraits *ggml = nullptr;
    // Values per scale group: w_mean's groups (ggml: the block's).
    int64_t group(int64_t in) const;
};

// One balance layer: its current weight [out, in] and how it will be
// quantized (null: it stays unquantized, e.g. a router or an ignored
// Linear; it takes the scales but adds nothing to w_mean or the error).
struct Balanced {
    const float *w = nullptr;
    int64_t out = 0;
    const RoundTrip *quant = nullptr;
};

// One point of the grid.
struct Candidate {
    double ratio = 0;
    bool duo = false;
};
// llm-compressor 0.14's grid for these options (see above). Throws
// KTQ_ERR_INVALID_ARGUMENT when grid is too small (duo: 3, else 2).
std::vector<Candidate> grid(const Options &o);

struct Search {
    std::vector<float> scales;   // [in], the chosen candidate
    int best = -1;               // its index in grid(o)
    Candidate chosen;
    std::vector<double> losses;  // per grid index
};

// The loss of candidate scales: the parent module's mean squared error.
using LossFn = std::function<double(const std::vector<float> &s)>;

// Mean |x| per channel of x [rows, in], accumulated in double in row order.
std::vector<float> abs_mean(const float *x, int64_t rows, int64_t in);

// The scales of one candidate (see above); w_mean is ignored unless duo.
std::vector<float> scales_of(const Candidate &c, const std::vector<float> &x_mean, const std::vector<float> &w_mean);

// Mean of |w| / (group max + 1e-6) per input channel over every row of the
// layers that are quantized (group size: the first such layer's).
std::vector<float> weight_mean(const std::vector<Balanced> &layers, int64_t in);

// Q(W s) / s (ct: in the scheme's dtype): what the model computes with after
// the fold. w: [rows, in]; out may alias w.
void fake_quantize_scaled(const RoundTrip &q, const float *w, int64_t rows, int64_t in, const float *s,
                          float *out, ThreadPool &pool);

// The loss of a parent that is the balance Linears themselves (one Linear,
// or several read side by side): || x W^T - x (Q(W s) / s)^T ||^2 / (rows *
// total outputs), through X^T X when there are more rows than channels
// (gram: input_gram(x), or empty to use x directly). backend: where the
// products run (nullptr: the CPU, on the pool).
double linear_loss(const std::vector<Balanced> &layers, int64_t in, const float *x, int64_t rows,
                   const std::vector<float> &gram, const std::vector<float> &s, ThreadPool &pool,
                   MatmulBackend *backend = nullptr);
std::vector<float> input_gram(const float *x, int64_t rows, int64_t in, ThreadPool &pool,
                              MatmulBackend *backend = nullptr);

// The grid search: x_mean is abs_mean over all calibration inputs; `loss`
// measures each candidate (the caller swaps the balance layers' weights
// for fake_quantize_scaled ones and runs the parent).
Search search(const std::vector<Balanced> &layers, int64_t in, const std::vector<float> &x_mean, const Options &o,
              const LossFn &loss);

// AutoAWQ's clipping search, run on a Linear's final (scaled) weight w
// [out, in]: for every row and quantization group, the values are clamped
// to +-max|w_group| * (1 - i / grid) for i in [0, max_shrink * grid), and
// the i whose output error over the calibration inputs is smallest (the
// first on ties, i = 0 being no clipping) is applied to w in place. The
// error of a group's weight change d is d^T G d with G the Gram matrix of
// the group's input columns (group_grams), i.e. summed over every token.
// Returns how many (row, group) pairs were clipped.
uint64_t clip(const ct::Scheme &scheme, float *w, int64_t out, int64_t in, const std::vector<float> &grams, int grid,
              double max_shrink, ThreadPool &pool);

// Per quantization group g of the input columns: G_g = X_g^T X_g
// ([groups, group, group]; summed in double in row order, stored as float).
std::vector<float> group_grams(const float *x, int64_t rows, int64_t in, int group, ThreadPool &pool);

}  // namespace awq
}  // namespace ktq
