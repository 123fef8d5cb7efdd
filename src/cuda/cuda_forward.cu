#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include "cuda/cuda_forward.h"
#include "cuda/cuda_support.h"
#include "cuda/device_ops.h"
#include "forward/attention.h"
#include "forward/causal_lm.h"
#include "forward/decoder_layer.h"
#include "runtime/error.h"

namespace ktq {

namespace {

using cuda::Buffer;
using cuda::check;

constexpr int64_t kVocabChunk = 4096, kTokenChunk = 4096;

size_t floats(const std::vector<float> &v) { return v.size(); }
size_t floats(const Linear &l) { return l.w.size() + l.b.size(); }

// What upload_layer() puts on the device.
size_t weight_bytes(const LayerWeights &w) {
    size_t n = floats(w.input_norm) + floats(w.post_norm) + floats(w.q_norm) + floats(w.k_norm) +
               floats(w.q_a_norm) + floats(w.kv_a_norm);
    for (const Linear *l : {&w.q, &w.k, &w.v, &w.o, &w.q_a, &w.q_b, &w.kv_a, &w.kv_b, &w.gate, &w.up, &w.down,
                            &w.router, &w.shared.gate, &w.shared.up, &w.shared.down, &w.shared_gate})
        n += floats(*l);
    for (const ExpertWeights &e : w.experts) n += floats(e.gate) + floats(e.up) + floats(e.down);
    return n * 4;
}

// The work buffers: 0 the normed input; 1-4 attention (q, k or MLA's kv_a output, v or kv_b output, heads'
// output), MoE: router logits (1), gathered rows (2), expert output (3); 5 the block's output; 6-7 MLP
// intermediates (MLA: q_a output, latent); 8 MLA keys; 9 the shared expert's gate.
constexpr int kWorkBuffers = 10;

// Floats per row each work buffer needs for layer w (the slots forward_layer() below uses).
std::array<int64_t, kWorkBuffers> row_floats(const LayerWeights &w, const ForwardConfig &c) {
    std::array<int64_t, kWorkBuffers> f{};
    auto need = [&](int slot, int64_t n) { f[static_cast<size_t>(slot)] = std::max(f[static_cast<size_t>(slot)], n); };
    auto mlp = [&](const Linear &gate, const Linear &up, const Linear &down, int out) {
        need(6, gate.out);
        need(7, up.out);
        need(out, down.out);
    };
    need(0, c.hidden);
    if (c.mla) {
        const int64_t dqk = c.qk_nope_dim + c.qk_rope_dim;
        need(6, w.q_a.out);
        need(1, w.q_a.empty() ? w.q.out : w.q_b.out);
        need(2, w.kv_a.out);
        need(7, c.kv_lora_rank);
        need(3, w.kv_b.out);
        need(8, c.heads * dqk);
        need(4, c.heads * c.v_head_dim);
    } else {
        need(1, w.q.out);
        need(2, w.k.out);
        need(3, w.v.out);
        need(4, static_cast<int64_t>(c.heads) * c.head_dim);
    }
    need(5, std::max<int64_t>(w.o.out, c.hidden));
    if (w.moe) {
        need(1, w.router.out);
        need(2, c.hidden);
        for (const ExpertWeights &e : w.experts) mlp(e.gate, e.up, e.down, 3);
        if (w.has_shared) mlp(w.shared.gate, w.shared.up, w.shared.down, 3);
        need(9, w.shared_gate.out);
    } else {
        mlp(w.gate, w.up, w.down, 5);
    }
    return f;
}

// What the forward holds for its whole life, with the margin: the hidden states and the RoPE tables.
size_t fixed_bytes(const ForwardConfig &c, int64_t seqs, int64_t seq_len) {
    return static_cast<size_t>(seqs * seq_len * c.hidden + 2 * seq_len * static_cast<int64_t>(c.rope_inv_freq.size())) *
               4 +
           kCudaForwardMargin;
}

// cuBLAS handle owned by one object (freed on every path).
struct BlasHandle {
    cublasHandle_t h = nullptr;
    BlasHandle() {
        check(cublasCreate(&h), "cublasCreate");
        cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    }
    ~BlasHandle() { cublasDestroy(h); }
    BlasHandle(const BlasHandle &) = delete;
    BlasHandle &operator=(const BlasHandle &) = delete;
};

class CudaForward : public DeviceForward {
public:
    CudaForward(const ForwardConfig &cfg, int64_t seqs, int64_t seq_len, int64_t batch, int device, size_t limit)
        : cfg_(cfg), seqs_(seqs), seq_len_(seq_len), batch_(std::max<int64_t>(1, std::min(batch, seqs))),
          device_(device), limit_(limit) {
        hidden_.resize(static_cast<size_t>(seqs * seq_len * cfg.hidden), "hidden states");
        std::vector<float> cos, sin;
        rope_tables(cfg, seq_len, cos, sin);
        upload(cos_, cos, "RoPE cos");
        upload(sin_, sin, "RoPE sin");
    }

    // Bytes left for weights and work buffers: what is free plus what we hold besides the hidden states (freed
    // before a layer's weights go up), less the margin; within the limit when there is one.
    size_t available() const {
        check(cudaSetDevice(device_), "cudaSetDevice");
        size_t free_b = 0, total_b = 0;
        check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
        size_t held = weights_bytes_ + (scores_.size() + route_w_.size()) * 4 + rows_.size() * 4;
        for (const Buffer<float> &b : work_) held += b.size() * 4;
        const size_t fixed = fixed_bytes(cfg_, seqs_, seq_len_);
        size_t avail = free_b + held > kCudaForwardMargin ? free_b + held - kCudaForwardMargin : 0;
        if (limit_) avail = std::min(avail, limit_ > fixed ? limit_ - fixed : 0);
        return avail;
    }

    size_t bytes_needed(const LayerWeights &w, int64_t windows) const override {
        const int64_t rows = windows * seq_len_;
        size_t work = 0;
        for (int64_t f : row_floats(w, cfg_)) work += static_cast<size_t>(rows * f);
        const size_t routing = w.moe ? static_cast<size_t>(rows * cfg_.top_k) * 8 : 0;  // rows_ and route_w_
        return weight_bytes(w) + (work + cuda::attention_score_floats(windows, seq_len_)) * 4 + routing;
    }

    int64_t windows_per_batch(const LayerWeights &w) const override {
        const size_t avail = available();
        for (int64_t b = batch_; b >= 1; b /= 2)
            if (bytes_needed(w, b) <= avail) return b;
        return 0;
    }

    void release() override {
        weights_.clear();
        weights_bytes_ = 0;
        for (Buffer<float> &b : work_) b.resize(0, "");
        scores_.resize(0, "");
        rows_.resize(0, "");
        route_w_.resize(0, "");
    }

    bool head_fits(int64_t vocab) const override {
        const int64_t n = seqs_ * seq_len_, vc = std::min(kVocabChunk, vocab), tc = std::min(kTokenChunk, n);
        const size_t need = static_cast<size_t>(vc * cfg_.hidden + tc * vc + cfg_.hidden) * 4 +
                            static_cast<size_t>(n) * (4 + 8 + 4 + 4);  // head chunk, logits, norm; per token
        return need <= available();
    }

    void load_hidden(const float *hidden) override {
        check(cudaSetDevice(device_), "cudaSetDevice");
        check(cudaMemcpy(hidden_.get(), hidden, hidden_.size() * 4, cudaMemcpyHostToDevice), "copy of hidden states");
    }
    void save_hidden(float *hidden) override {
        check(cudaSetDevice(device_), "cudaSetDevice");
        check(cudaMemcpy(hidden, hidden_.get(), hidden_.size() * 4, cudaMemcpyDeviceToHost), "copy of hidden states");
    }

    bool forward_layer(const LayerWeights &w, int64_t windows) override {
        check(cudaSetDevice(device_), "cudaSetDevice");
        if (windows < 1) fail(KTQ_ERR_INTERNAL, "GPU forward: no windows per batch");
        if (w.moe && (w.router.out != cfg_.num_experts || static_cast<int64_t>(w.experts.size()) != cfg_.num_experts))
            fail(KTQ_ERR_FORMAT, w.router.name + ": the router and the experts do not match num_experts of config.json");
        // Every allocation before the hidden states change: memory short after all (another process took it
        // since windows_per_batch) leaves them as they were, for the per-product path.
        try {
            upload_layer(w);
            const int64_t rows = windows * seq_len_;
            const std::array<int64_t, kWorkBuffers> f = row_floats(w, cfg_);
            for (int slot = 0; slot < kWorkBuffers; ++slot) work(slot, rows * f[static_cast<size_t>(slot)]);
            scores_.resize(cuda::attention_score_floats(windows, seq_len_), "attention scores");
            if (w.moe) {
                rows_.resize(static_cast<size_t>(rows * cfg_.top_k), "expert rows");
                route_w_.resize(static_cast<size_t>(rows * cfg_.top_k), "routing weights");
            }
        } catch (const Error &e) {
            if (e.status() != KTQ_ERR_NO_MEMORY) throw;
            release();
            return false;
        }
        const int64_t H = cfg_.hidden;
        for (int64_t s0 = 0; s0 < seqs_; s0 += windows) {
            const int64_t b = std::min(windows, seqs_ - s0), rows = b * seq_len_;
            float *h = hidden_.get() + s0 * seq_len_ * H;
            float *x = work(0, rows * H);
            cuda::rms_norm(x, H, h, H, dev(w.input_norm), rows, H, cfg_.rms_eps);
            cuda::add_into(h, cfg_.mla ? mla_attention(w, x, b) : gqa_attention(w, x, b), static_cast<size_t>(rows * H));
            cuda::rms_norm(x, H, h, H, dev(w.post_norm), rows, H, cfg_.rms_eps);
            cuda::add_into(h, w.moe ? moe(w, x, rows) : swiglu(w.gate, w.up, w.down, x, rows, 5),
                           static_cast<size_t>(rows * H));
        }
        check(cudaDeviceSynchronize(), "decoder layer");
        return true;
    }

    std::vector<double> next_token_nll(const Model &model, const int32_t *tokens) override {
        check(cudaSetDevice(device_), "cudaSetDevice");
        release();
        const int64_t n = seqs_ * seq_len_, H = cfg_.hidden;
        const std::vector<float> norm = load_vector(model, cfg_.prefix + "norm.weight");
        Buffer<float> dnorm;
        upload(dnorm, norm, "final norm");
        cuda::rms_norm(hidden_.get(), H, hidden_.get(), H, dnorm.get(), n, H, cfg_.rms_eps);
        const MatrixView head = lm_head(model, cfg_);
        const int64_t V = static_cast<int64_t>(head.rows);
        std::vector<int32_t> next(static_cast<size_t>(n), -1);
        for (int64_t t = 0; t < n; ++t)
            if (t % seq_len_ != seq_len_ - 1) next[static_cast<size_t>(t)] = tokens[t + 1];
        Buffer<int32_t> dnext(next.size(), "next tokens");
        check(cudaMemcpy(dnext.get(), next.data(), next.size() * 4, cudaMemcpyHostToDevice), "copy of next tokens");
        std::vector<float> run_max(static_cast<size_t>(n), -INFINITY), target(static_cast<size_t>(n), 0.0f);
        std::vector<double> run_sum(static_cast<size_t>(n), 0.0);
        Buffer<float> dmax(run_max.size(), "log-sum-exp"), dtarget(target.size(), "targets"),
            dw(static_cast<size_t>(std::min(kVocabChunk, V) * H), "LM head");
        Buffer<double> dsum(run_sum.size(), "log-sum-exp");
        check(cudaMemcpy(dmax.get(), run_max.data(), run_max.size() * 4, cudaMemcpyHostToDevice), "log-sum-exp");
        check(cudaMemcpy(dsum.get(), run_sum.data(), run_sum.size() * 8, cudaMemcpyHostToDevice), "log-sum-exp");
        check(cudaMemcpy(dtarget.get(), target.data(), target.size() * 4, cudaMemcpyHostToDevice), "targets");
        std::vector<float> w;
        for (int64_t v0 = 0; v0 < V; v0 += kVocabChunk) {
            const int64_t vc = std::min(kVocabChunk, V - v0);
            w.resize(static_cast<size_t>(vc * H));
            model.read_rows(head, static_cast<uint64_t>(v0), static_cast<uint64_t>(vc), KTQ_DTYPE_F32, w.data());
            check(cudaMemcpy(dw.get(), w.data(), w.size() * 4, cudaMemcpyHostToDevice), "copy of the LM head");
            for (int64_t t0 = 0; t0 < n; t0 += kTokenChunk) {
                const int64_t tc = std::min(kTokenChunk, n - t0);
                float *logits = work(0, tc * vc);
                cuda::product_abt(blas_.h, logits, hidden_.get() + t0 * H, dw.get(), tc, H, vc);
                cuda::logsumexp_update(logits, tc, vc, v0, dnext.get() + t0, dmax.get() + t0, dsum.get() + t0,
                                       dtarget.get() + t0);
            }
        }
        check(cudaMemcpy(run_max.data(), dmax.get(), run_max.size() * 4, cudaMemcpyDeviceToHost), "log-sum-exp");
        check(cudaMemcpy(run_sum.data(), dsum.get(), run_sum.size() * 8, cudaMemcpyDeviceToHost), "log-sum-exp");
        check(cudaMemcpy(target.data(), dtarget.get(), target.size() * 4, cudaMemcpyDeviceToHost), "targets");
        return nll_from_logsumexp(run_max, run_sum, target, tokens, seqs_, seq_len_, V);
    }

private:
    static void upload(Buffer<float> &b, const std::vector<float> &v, const char *what) {
        b.resize(v.size(), what);
        if (!v.empty()) check(cudaMemcpy(b.get(), v.data(), v.size() * 4, cudaMemcpyHostToDevice), what);
    }

    // The layer's weights; the previous layer's weights and every work buffer are freed first, so that the
    // room windows_per_batch() counted on is there (the buffers grow again to this layer's sizes).
    void upload_layer(const LayerWeights &w) {
        release();
        auto put = [&](const std::vector<float> &v) {
            if (v.empty()) return;
            upload(weights_[v.data()], v, "layer weights");
            weights_bytes_ += v.size() * 4;
        };
        for (const std::vector<float> *v : {&w.input_norm, &w.post_norm, &w.q_norm, &w.k_norm, &w.q_a_norm,
                                            &w.kv_a_norm})
            put(*v);
        for (const Linear *l : {&w.q, &w.k, &w.v, &w.o, &w.q_a, &w.q_b, &w.kv_a, &w.kv_b, &w.gate, &w.up, &w.down,
                                &w.router, &w.shared.gate, &w.shared.up, &w.shared.down, &w.shared_gate}) {
            put(l->w);
            put(l->b);
        }
        for (const ExpertWeights &e : w.experts)
            for (const Linear *l : {&e.gate, &e.up, &e.down}) {
                put(l->w);
                put(l->b);
            }
    }

    const float *dev(const std::vector<float> &v) const {
        auto it = weights_.find(v.data());
        if (v.empty() || it == weights_.end()) fail(KTQ_ERR_INTERNAL, "GPU forward: a weight was not uploaded");
        return it->second.get();
    }

    // Work buffer `slot`, at least `count` floats (its contents are kept only while it does not grow).
    float *work(int slot, int64_t count) {
        Buffer<float> &b = work_[slot];
        if (b.size() < static_cast<size_t>(count)) b.resize(static_cast<size_t>(count), "forward work buffer");
        return b.get();
    }

    // y = x W^T + b into work buffer `slot`.
    float *linear(const Linear &l, const float *x, int64_t rows, int slot) {
        float *y = work(slot, rows * l.out);
        cuda::product_abt(blas_.h, y, x, dev(l.w), rows, l.in, l.out);
        if (!l.b.empty()) cuda::add_bias(y, dev(l.b), rows, l.out);
        return y;
    }

    // down(silu(gate(x)) * up(x)) into work buffer `out_slot` (slots 6 and 7 hold the intermediates).
    float *swiglu(const Linear &gate, const Linear &up, const Linear &down, const float *x, int64_t rows,
                  int out_slot) {
        float *g = linear(gate, x, rows, 6);
        const float *u = linear(up, x, rows, 7);
        cuda::silu_mul(g, u, static_cast<size_t>(rows * gate.out));
        return linear(down, g, rows, out_slot);
    }

    const float *gqa_attention(const LayerWeights &w, const float *x, int64_t windows) {
        const ForwardConfig &c = cfg_;
        const int64_t rows = windows * seq_len_, hd = c.head_dim, qs = c.heads * hd, ks = c.kv_heads * hd;
        if (w.q.out != qs || w.k.out != ks || w.v.out != ks)
            fail(KTQ_ERR_FORMAT, w.q.name + ": q/k/v output sizes do not match the heads and head_dim of config.json");
        float *q = linear(w.q, x, rows, 1), *k = linear(w.k, x, rows, 2);
        const float *v = linear(w.v, x, rows, 3);
        if (!w.q_norm.empty()) cuda::rms_norm(q, hd, q, hd, dev(w.q_norm), rows * c.heads, hd, c.rms_eps);
        if (!w.k_norm.empty()) cuda::rms_norm(k, hd, k, hd, dev(w.k_norm), rows * c.kv_heads, hd, c.rms_eps);
        const int64_t half = static_cast<int64_t>(c.rope_inv_freq.size());
        cuda::rope(q, rows, qs, c.heads, hd, 0, cos_.get(), sin_.get(), half, seq_len_, false);
        cuda::rope(k, rows, ks, c.kv_heads, hd, 0, cos_.get(), sin_.get(), half, seq_len_, false);
        float *out = work(4, rows * qs);
        cuda::causal_attention(blas_.h, scores_, out, q, k, v, gqa_attention_shape(c, windows, seq_len_));
        return linear(w.o, out, rows, 5);
    }

    const float *mla_attention(const LayerWeights &w, const float *x, int64_t windows) {
        const ForwardConfig &c = cfg_;
        const int64_t rows = windows * seq_len_, H = c.heads, dn = c.qk_nope_dim, dr = c.qk_rope_dim,
                      dv = c.v_head_dim, dqk = dn + dr, r = c.kv_lora_rank;
        float *q;
        if (!w.q_a.empty()) {
            float *qa = linear(w.q_a, x, rows, 6);
            cuda::rms_norm(qa, w.q_a.out, qa, w.q_a.out, dev(w.q_a_norm), rows, w.q_a.out, c.rms_eps);
            q = linear(w.q_b, qa, rows, 1);
            if (w.q_b.out != H * dqk) fail(KTQ_ERR_FORMAT, w.q_b.name + ": MLA projection sizes do not match config.json");
        } else {
            q = linear(w.q, x, rows, 1);
            if (w.q.out != H * dqk) fail(KTQ_ERR_FORMAT, w.q.name + ": MLA projection sizes do not match config.json");
        }
        if (w.kv_a.out != r + dr || w.kv_b.out != H * (dn + dv))
            fail(KTQ_ERR_FORMAT, w.kv_a.name + ": MLA projection sizes do not match config.json");
        float *ckv = linear(w.kv_a, x, rows, 2);
        float *latent = work(7, rows * r);
        cuda::rms_norm(latent, r, ckv, r + dr, dev(w.kv_a_norm), rows, r, c.rms_eps);
        const float *kv = linear(w.kv_b, latent, rows, 3);
        const int64_t half = static_cast<int64_t>(c.rope_inv_freq.size());
        cuda::rope(ckv, rows, r + dr, 1, 0, r, cos_.get(), sin_.get(), half, seq_len_, c.rope_interleave);
        cuda::rope(q, rows, H * dqk, H, dqk, dn, cos_.get(), sin_.get(), half, seq_len_, c.rope_interleave);
        float *key = work(8, rows * H * dqk);
        cuda::mla_keys(key, kv, ckv, rows, H, dn, dr, dv, r + dr, r);
        float *out = work(4, rows * H * dv);
        cuda::causal_attention(blas_.h, scores_, out, q, key, kv + dn, mla_attention_shape(c, windows, seq_len_));
        return linear(w.o, out, rows, 5);
    }

    // Routed experts (chosen on the host from the device's logits) plus shared experts, into work buffer 5.
    const float *moe(const LayerWeights &w, const float *x, int64_t rows) {
        const ForwardConfig &c = cfg_;
        const int64_t H = c.hidden, E = c.num_experts, K = c.top_k;
        const float *dlogits = linear(w.router, x, rows, 1);
        std::vector<float> logits(static_cast<size_t>(rows * E));
        check(cudaMemcpy(logits.data(), dlogits, logits.size() * 4, cudaMemcpyDeviceToHost), "copy of router logits");
        std::vector<int32_t> idx;
        std::vector<float> wt;
        choose_experts(c, w, logits.data(), rows, idx, wt);
        // Per expert, its tokens in token order (the CPU's order), one after another.
        std::vector<int64_t> begin(static_cast<size_t>(E) + 1, 0);
        for (int32_t e : idx) ++begin[static_cast<size_t>(e) + 1];
        for (int64_t e = 0; e < E; ++e) begin[static_cast<size_t>(e) + 1] += begin[static_cast<size_t>(e)];
        std::vector<int32_t> tok(idx.size());
        std::vector<float> tw(idx.size());
        std::vector<int64_t> fill(begin.begin(), begin.end() - 1);
        for (int64_t t = 0; t < rows; ++t)
            for (int64_t j = 0; j < K; ++j) {
                const size_t i = static_cast<size_t>(t * K + j);
                const size_t at = static_cast<size_t>(fill[static_cast<size_t>(idx[i])]++);
                tok[at] = static_cast<int32_t>(t);
                tw[at] = wt[i];
            }
        if (rows_.size() < tok.size()) rows_.resize(tok.size(), "expert rows");
        if (route_w_.size() < tw.size()) route_w_.resize(tw.size(), "routing weights");
        check(cudaMemcpy(rows_.get(), tok.data(), tok.size() * 4, cudaMemcpyHostToDevice), "copy of expert rows");
        check(cudaMemcpy(route_w_.get(), tw.data(), tw.size() * 4, cudaMemcpyHostToDevice), "copy of routing weights");
        float *out = work(5, rows * H);
        check(cudaMemset(out, 0, static_cast<size_t>(rows * H) * 4), "expert outputs");
        for (int64_t e = 0; e < static_cast<int64_t>(w.experts.size()); ++e) {
            const int64_t b = begin[static_cast<size_t>(e)], m = begin[static_cast<size_t>(e) + 1] - b;
            if (m == 0) continue;
            const ExpertWeights &ew = w.experts[static_cast<size_t>(e)];
            float *gathered = work(2, m * H);
            cuda::gather_rows(gathered, x, rows_.get() + b, m, H);
            const float *y = swiglu(ew.gate, ew.up, ew.down, gathered, m, 3);
            cuda::scatter_add_rows(out, y, rows_.get() + b, route_w_.get() + b, m, H);
        }
        if (w.has_shared) {
            const float *y = swiglu(w.shared.gate, w.shared.up, w.shared.down, x, rows, 3);
            const float *gate = w.shared_gate.empty() ? nullptr : linear(w.shared_gate, x, rows, 9);
            cuda::add_gated(out, y, gate, rows, H);
        }
        return out;
    }

    const ForwardConfig cfg_;
    const int64_t seqs_, seq_len_, batch_;
    const int device_;
    const size_t limit_;
    BlasHandle blas_;
    Buffer<float> hidden_, cos_, sin_, scores_;
    Buffer<float> work_[kWorkBuffers];
    Buffer<int32_t> rows_;
    Buffer<float> route_w_;
    std::map<const float *, Buffer<float>> weights_;
    size_t weights_bytes_ = 0;
};

}  // namespace

std::unique_ptr<DeviceForward> make_cuda_forward(const ForwardConfig &cfg, int64_t seqs, int64_t seq_len,
                                                 int64_t batch_windows, int device, size_t memory_limit) {
    check(cudaSetDevice(device), "cudaSetDevice");
    size_t free_b = 0, total_b = 0;
    check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
    const size_t room = memory_limit ? std::min(memory_limit, free_b) : free_b;
    if (fixed_bytes(cfg, seqs, seq_len) > room) return nullptr;
    try {
        return std::make_unique<CudaForward>(cfg, seqs, seq_len, batch_windows, device, memory_limit);
    } catch (const Error &e) {
        if (e.status() == KTQ_ERR_NO_MEMORY) return nullptr;  // taken by someone else meanwhile
        throw;
    }
}

}  // namespace ktq
