// One decoder layer of the supported transformer families, in float32:
// RMSNorm -> attention (GQA with RoPE, or DeepSeek MLA) -> residual ->
// RMSNorm -> MLP or MoE (routers as each family defines them, shared
// experts) -> residual. Sequences are independent windows of equal length;
// positions restart at 0 in each.
//
// An ActivationObserver sees the input of every quantizable Linear
// (calibration: GPTQ Hessians, AWQ statistics). With it, every routed
// expert is also run on all tokens of the batch, so that an expert the
// router never picks still gets statistics ("all-experts" calibration),
// while the layer's output keeps using the router's choice.
#pragma once

#include <cstdint>
#include <vector>

#include "forward/attention.h"
#include "forward/forward_config.h"
#include "forward/layer_weights.h"
#include "forward/matmul.h"
#include "runtime/thread_pool.h"

namespace ktq {

class ActivationObserver {
public:
    virtual ~ActivationObserver() = default;
    // x: [rows, linear.in], valid during the call. Called from the thread
    // that runs forward_layer(), in a fixed order.
    virtual void observe(const Linear &linear, const float *x, int64_t rows) = 0;
    // A routed expert's inputs restricted to the tokens the router sent it
    // (seen in addition to the all-token inputs observe() gets).
    virtual void observe_routed(const Linear &linear, const float *x, int64_t rows) {}
    // All-experts calibration of routed expert `e`: its gate and up see
    // every row of x, its down silu(x gate^T) * (x up^T). An observer that
    // computes this itself (on a GPU) returns true and the forward pass skips
    // it; by default the forward computes it and calls observe().
    virtual bool observe_expert_all_tokens(const ExpertWeights &e, const float *x, int64_t rows) { return false; }
};

struct ForwardContext {
    const ForwardConfig *cfg = nullptr;
    ThreadPool *pool = nullptr;
    ActivationObserver *observer = nullptr;
    std::vector<uint64_t> *expert_tokens = nullptr;  // += routed tokens per expert (MoE layers)
    MatmulBackend *matmul = nullptr;  // where the Linears' products run (nullptr: the CPU, on the pool)
};

// The two halves of a layer, on their normalized inputs x ([seqs * seq_len,
// hidden]): attention (GQA or MLA) with o_proj, and the MLP (dense SwiGLU,
// or the routed experts plus shared experts). Each returns [rows, hidden]:
// what the layer adds to the residual stream. AWQ measures its loss on them.
std::vector<float> attention_block(const ForwardContext &ctx, const LayerWeights &w, const float *x, int64_t seqs,
                                   int64_t seq_len);
std::vector<float> mlp_block(const ForwardContext &ctx, const LayerWeights &w, const float *x, int64_t rows);

// silu(x gate^T) * (x up^T), [rows, gate.out]: a SwiGLU MLP's input to its
// down projection (the observer sees x for gate and up). With a backend and
// no observer, on the backend's device when it offers it.
std::vector<float> swiglu_hidden(const ForwardContext &ctx, const Linear &gate, const Linear &up, const float *x,
                                 int64_t rows);

// hidden: [seqs * seq_len, cfg.hidden], updated in place.
void forward_layer(const ForwardContext &ctx, const LayerWeights &w, float *hidden, int64_t seqs, int64_t seq_len);

// y[rows, n] = x[rows, n] * rsqrt(mean(x^2) + eps) * weight
void rms_norm(float *y, const float *x, const float *weight, int64_t rows, int64_t n, float eps);

// The router's choice from its logits ([n, num_experts]): per token, top_k
// expert indices and their weights (softmax or DeepSeek's grouped sigmoid,
// renormalised and scaled as the config asks).
void choose_experts(const ForwardConfig &cfg, const LayerWeights &w, const float *logits, int64_t n,
                    std::vector<int32_t> &idx, std::vector<float> &wt);

// cos and sin of position p, frequency i ([seq_len, rotary dim / 2]), as
// transformers' rotary embedding computes them from the config's inverse
// frequencies (forward/rope_scaling.h), times the rope's attention factor.
void rope_tables(const ForwardConfig &cfg, int64_t seq_len, std::vector<float> &cos, std::vector<float> &sin);

// Where causal_attention() finds each head in the projections' outputs: GQA's q/k/v rows, and MLA's
// [seqs * seq_len, heads, nope + rope] queries and keys with the values inside kv_b's [nope | v] rows
// (the caller passes kv_b's output + nope as v). Shared by the CPU and GPU forwards.
AttentionShape gqa_attention_shape(const ForwardConfig &cfg, int64_t seqs, int64_t seq_len);
AttentionShape mla_attention_shape(const ForwardConfig &cfg, int64_t seqs, int64_t seq_len);

// y = x W^T + b for a Linear (its product on `backend` when given).
void apply_linear(float *y, const Linear &l, const float *x, int64_t rows, ThreadPool &pool,
                  MatmulBackend *backend = nullptr);

}  // namespace ktq
