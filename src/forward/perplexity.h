// Perplexity of a checkpoint on a token sequence, with the protocol of
// ../shared/README.md: the first `max_tokens` tokens as non-overlapping
// windows of `window` tokens (a partial last window is dropped), mean
// next-token cross-entropy over the window - 1 predicted positions of each
// window, ppl = exp(mean). Layer by layer over all windows, so only one
// decoder layer's weights are in memory at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "reading/model.h"

namespace ktq {

struct PerplexityOptions {
    int64_t window = 256;
    int64_t max_tokens = 131072;  // 0 = all
    int64_t batch_windows = 16;   // windows per forward call (bounds activation memory)
    // Called after each decoder layer and at the end; return false to cancel.
    std::function<bool(int layer, int layers)> progress;
    std::vector<double> *token_nll = nullptr;  // receives every position's loss when set
    // On CUDA device 0: whole decoder layers there (cuda/cuda_forward.h) while the hidden states of all windows
    // fit in its memory, else the products only (cuda/cuda_matmul.h); per layer, whichever fits.
    bool cuda = false;
    int64_t cuda_batch_windows = 64;  // windows per batch on the GPU, at most (halved until a layer fits)
    size_t cuda_memory_limit = 0;     // device bytes the whole-layer forward may take (0: what is free); tests

};

struct PerplexityResult {
    double perplexity = 0;
    double mean_nll = 0;
    uint64_t tokens_scored = 0;
    uint64_t windows = 0;
    // With cuda: decoder layers run whole on the device (the others per product), and whether the LM head did.
    uint64_t device_layers = 0;
    bool head_on_device = false;
};

PerplexityResult evaluate_perplexity(const Model &model, const std::vector<int32_t> &tokens,
                                     const PerplexityOptions &opts);

}  // namespace ktq
