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
    // Windows per batch with which a layer's weights and work buffers fit in the device memory left beside the
    // hidden states: the largest of batch_windows, its half, its quarter, ... that fits; 0 when even one window
    // does not (the caller then runs the layer through the per-product path: release, save_hidden, the CPU
    // forward, load_hidden).
    virtual int64_t windows_per_batch(const LayerWeights &w) const = 0;
    // Device bytes a layer needs with `windows` windows per batch: weights, work buffers, attention scores.
    virtual size_t bytes_needed(const LayerWeights &w, int64_t windows) const = 0;
    // hidden: [seqs * seq_len, cfg.hidden].
    virtual void load_hidden(const float *hidden) = 0;
    virtual void save_hidden(float *hidden) = 0;
    // forward_layer() over every window, `windows` (from windows_per_batch) at a time. false: the device ran out
    // of memory while the layer's weights and buffers went up (before any hidden state changed); everything but
    // the hidden states is freed again and the caller runs the layer through the per-product path.
    virtual bool forward_layer(const LayerWeights &w, int64_t windows) = 0;
    // Frees everything but the hidden states (the per-product path is about to need the room).
    virtual void release() = 0;
    // Whether next_token_nll() fits beside the hidden states (else: save_hidden and the host's next_token_nll).
    virtual bool head_fits(int64_t vocab) const = 0;
    // next_token_nll() of causal_lm.h on the hidden states held here (final norm applied in place).
    virtual std::vector<double> next_token_nll(const Model &model, const int32_t *tokens) = 0;
};

// Device memory left free beside ours (cuBLAS workspaces, the driver's own): never counted as available.
constexpr size_t kCudaForwardMargin = size_t(256) << 20;

// For seqs windows of seq_len tokens, at most batch_windows at a time. memory_limit: bytes of device memory the
// hidden states, RoPE tables, weights and work buffers may take together, the margin included (0: what is free
// now). nullptr when the hidden states and RoPE tables do not fit (or their allocation fails).
std::unique_ptr<DeviceForward> make_cuda_forward(const ForwardConfig &cfg, int64_t seqs, int64_t seq_len,
                                                 int64_t batch_windows, int device, size_t memory_limit = 0);

}  // namespace ktq
