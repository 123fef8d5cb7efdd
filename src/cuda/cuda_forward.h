// Whole decoder layers on a CUDA device, for `ktq eval-ppl --device cuda`:
// the hidden states of every window stay in device memory from the
// embeddings to the losses, each layer's weights go up once, and every
// operation of forward/decoder_layer.h (norms, RoPE, attention, SwiGLU, the
// experts' gather and weighted sum, residual adds) and the LM head's running
// log-sum-exp run there (cuda/device_ops.h). Only the routers' logits come
// back: the experts are chosen on the host by choose_experts(), the CPU's own
// rules. Products are cuBLAS float32 without TF32, as cuda_matmul's.
//
// There is no ActivationObserver here: the calibration engines keep
// cuda_matmul's per-product path. Built from cuda_forward.cu with
// -DKTQ_CUDA=ON; without CUDA make_cuda_forward throws KTQ_ERR_UNSUPPORTED.
// Not thread-safe: one per evaluation.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "forward/forward_config.h"
#include "forward/layer_weights.h"
#include "reading/model.h"

namespace ktq {

class DeviceForward {
public:
    virtual ~DeviceForward() = default;
    // Whether a layer's weights and its work buffers fit in the device memory left beside the hidden states (the
    // caller runs a layer that does not through the per-product path: save_hidden, the CPU forward, load_hidden).
    virtual bool fits(const LayerWeights &w) const = 0;
    // hidden: [seqs * seq_len, cfg.hidden].
    virtual void load_hidden(const float *hidden) = 0;
    virtual void save_hidden(float *hidden) = 0;
    // forward_layer() over every window, batch_windows at a time.
    virtual void forward_layer(const LayerWeights &w) = 0;
    // next_token_nll() of causal_lm.h on the hidden states held here (final norm applied in place).
    virtual std::vector<double> next_token_nll(const Model &model, const int32_t *tokens) = 0;
};

// For seqs windows of seq_len tokens. memory_limit: bytes of device memory it may use (0: what is free, less a
// margin). nullptr when the hidden states and one batch's work buffers do not fit.
std::unique_ptr<DeviceForward> make_cuda_forward(const ForwardConfig &cfg, int64_t seqs, int64_t seq_len,
                                                 int64_t batch_windows, int device, size_t memory_limit = 0);

}  // namespace ktq
