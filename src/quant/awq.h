// AWQ (Lin et al., 2023): activation-aware per-input-channel scales, as
// llm-compressor's AWQModifier searches them. For a group of Linears that
// read the same input x (the "balance" layers of one mapping: q/k/v after
// the input norm, gate/up after the post-attention norm, down after up, o
// after v), a scale s per input channel is chosen from a grid of `grid`
// exponents r = 0, 1/grid, ..., (grid-1)/grid:
//   duo scaling:  s = max(x_mean^r / (w_mean^(1-r) + 1e-4), 1e-4)
//   plain:        s = max(x_mean^r, 1e-4)
//   s /= sqrt(max(s) * min(s)); non-finite entries -> 1
// where x_mean is the mean |x| of each channel over the calibration tokens
// and w_mean the mean of |w| / (max |w| of its quantization group + 1e-6)
// over every row of the balance layers. The chosen s minimises
//   sum over layers of || x W^T - x (Q(W s) / s)^T ||^2
// with Q the scheme's round-to-nearest quantizer (ct_rtn.h, the one the
// compressed-tensors writer uses), W s and Q(W s) / s rounded to the model
// dtype as torch computes them in a BF16/F16 model. The caller then folds
// s into the preceding norm or Linear (divides its weight by s) and keeps
// W s in the balance layers. The bias of a Linear cancels in the loss.
//
// The loss is one matmul per layer and candidate: x times the weight
// difference D, or, with more rows than input channels, D times X^T X
// (computed once per search); sums run in a fixed order, so the choice
// never depends on the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/ct_rtn.h"

namespace ktq {

class ThreadPool;

namespace awq {

struct Options {
    int grid = 20;
    bool duo_scaling = true;
};

// One balance layer: its current weight [out, in] and how it will be
// quantized (null: it stays unquantized, e.g. ignored by the plan; it still
// contributes to w_mean and takes the scales, but has no quantization error).
struct Balanced {
    const float *w = nullptr;
    int64_t out = 0;
    const ct::Scheme *scheme = nullptr;
};

struct Search {
    std::vector<float> scales;   // [in], the chosen candidate
    int best = -1;               // its grid index (ratio best / grid)
    std::vector<double> losses;  // per grid index: the summed squared error / (rows * total outputs)
};

// Mean |x| per channel of x [rows, in], accumulated in double in row order.
std::vector<float> abs_mean(const float *x, int64_t rows, int64_t in);

// The candidate scales of grid index i (see above); w_mean is ignored unless duo.
std::vector<float> candidate(const std::vector<float> &x_mean, const std::vector<float> &w_mean, int i,
                             const Options &o);

// Mean of |w| / (group max + 1e-6) per input channel over every row of the layers.
std::vector<float> weight_mean(const std::vector<Balanced> &layers, int64_t in, int group_size);

// Q(W s) / s in the scheme's dtype: what the model computes with after the
// fold. w: [rows, in]; out may alias w.
void fake_quantize_scaled(const ct::Scheme &scheme, const float *w, int64_t rows, int64_t in, const float *s,
                          float *out, ThreadPool &pool);

// The loss the search minimises, for scales s (all ones: plain round to
// nearest), divided by rows * the layers' total outputs.
double loss(const std::vector<Balanced> &layers, int64_t in, const float *x, int64_t rows, const float *s,
            ThreadPool &pool);

// The grid search. x: [rows, in] (the calibration inputs the loss is measured
// on), x_mean: abs_mean over all calibration inputs.
Search search(const std::vector<Balanced> &layers, int64_t in, const float *x, int64_t rows,
              const std::vector<float> &x_mean, const Options &o, ThreadPool &pool);

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
