#include "forward/decoder_layer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "forward/attention.h"
#include "forward/matmul.h"
#include "runtime/error.h"

namespace ktq {

void rms_norm(float *y, const float *x, const float *weight, int64_t rows, int64_t n, float eps) {
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
        const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
        for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * inv * weight[i];
    }
}

void apply_linear(float *y, const Linear &l, const float *x, int64_t rows, ThreadPool &pool, MatmulBackend *backend) {
    matmul_abt(y, x, l.w.data(), rows, l.in, l.out, pool, backend);
    if (!l.b.empty())
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < l.out; ++j) y[r * l.out + j] += l.b[static_cast<size_t>(j)];
}

void rope_tables(const ForwardConfig &c, int64_t seq_len, std::vector<float> &cos, std::vector<float> &sin) {
    const int64_t half = static_cast<int64_t>(c.rope_inv_freq.size());
    cos.resize(static_cast<size_t>(seq_len * half));
    sin.resize(cos.size());
    for (int64_t i = 0; i < half; ++i)
        for (int64_t p = 0; p < seq_len; ++p) {
            const float angle = static_cast<float>(p) * c.rope_inv_freq[static_cast<size_t>(i)];
            cos[static_cast<size_t>(p * half + i)] = std::cos(angle) * c.rope_attention_factor;
            sin[static_cast<size_t>(p * half + i)] = std::sin(angle) * c.rope_attention_factor;
        }
}

AttentionShape gqa_attention_shape(const ForwardConfig &c, int64_t seqs, int64_t seq_len) {
    const int64_t hd = c.head_dim, qs = c.heads * hd, ks = c.kv_heads * hd;
    AttentionShape a;
    a.seqs = seqs;
    a.seq_len = seq_len;
    a.heads = c.heads;
    a.group = c.heads / c.kv_heads;
    a.dq = a.dv = hd;
    a.q_row = a.out_row = qs;
    a.k_row = a.v_row = ks;
    a.q_head = a.k_head = a.v_head = a.out_head = hd;
    a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
    return a;
}

AttentionShape mla_attention_shape(const ForwardConfig &c, int64_t seqs, int64_t seq_len) {
    const int64_t H = c.heads, dn = c.qk_nope_dim, dv = c.v_head_dim, dqk = dn + c.qk_rope_dim;
    AttentionShape a;
    a.seqs = seqs;
    a.seq_len = seq_len;
    a.heads = H;
    a.dq = dqk;
    a.dv = dv;
    a.q_row = a.k_row = H * dqk;
    a.q_head = a.k_head = dqk;
    a.v_row = H * (dn + dv);
    a.v_head = dn + dv;
    a.out_row = H * dv;
    a.out_head = dv;
    a.scale = 1.0f / std::sqrt(static_cast<float>(dqk)) * c.softmax_scale_factor;
    return a;
}

namespace {

float silu(float x) { return x / (1.0f + std::exp(-x)); }

void observe(const ForwardContext &ctx, const Linear &l, const float *x, int64_t rows) {
    if (ctx.observer) ctx.observer->observe(l, x, rows);
}

// Runs `l` on x (after showing x to the observer).
std::vector<float> run_linear(const ForwardContext &ctx, const Linear &l, const float *x, int64_t rows) {
    observe(ctx, l, x, rows);
    std::vector<float> y(static_cast<size_t>(rows * l.out));
    apply_linear(y.data(), l, x, rows, *ctx.pool, ctx.matmul);
    return y;
}

// RoPE on one head's rotary part, with rope_tables()' cos and sin.
struct Rope {
    int64_t half = 0;
    std::vector<float> cos, sin;
    Rope(const ForwardConfig &c, int64_t seq_len) : half(static_cast<int64_t>(c.rope_inv_freq.size())) {
        rope_tables(c, seq_len, cos, sin);
    }
    // rotate_half layout: pairs (i, i + half).
    void apply_half(float *x, int64_t pos) const {
        const float *c = &cos[static_cast<size_t>(pos * half)], *s = &sin[static_cast<size_t>(pos * half)];
        for (int64_t i = 0; i < half; ++i) {
            const float a = x[i], b = x[i + half];
            x[i] = a * c[i] - b * s[i];
            x[i + half] = b * c[i] + a * s[i];
        }
    }
    // DeepSeek's interleaved layout: pairs (2i, 2i + 1), written back de-interleaved
    // (first the rotated evens, then the rotated odds), as transformers does.
    void apply_interleaved(float *x, int64_t pos, float *tmp) const {
        const float *c = &cos[static_cast<size_t>(pos * half)], *s = &sin[static_cast<size_t>(pos * half)];
        for (int64_t i = 0; i < half; ++i) {
            const float a = x[2 * i], b = x[2 * i + 1];
            tmp[i] = a * c[i] - b * s[i];
            tmp[i + half] = b * c[i] + a * s[i];
        }
        std::copy(tmp, tmp + 2 * half, x);
    }
};


// On the backend's device where it offers attention, else on the CPU.
void attention(const ForwardContext &ctx, float *out, const float *q, const float *k, const float *v,
               const AttentionShape &a) {
    if (ctx.matmul && ctx.matmul->causal_attention(out, q, k, v, a)) return;
    causal_attention(out, q, k, v, a, *ctx.pool);
}

// Standard multi-head attention with grouped KV heads. Returns [tokens, heads * head_dim].
std::vector<float> gqa_attention(const ForwardContext &ctx, const LayerWeights &w, const float *x, int64_t seqs,
                                 int64_t seq_len) {
    const ForwardConfig &c = *ctx.cfg;
    const int64_t n = seqs * seq_len, hd = c.head_dim;
    // q, k and v read the same input: the observer sees it once per Linear.
    std::vector<float> q = run_linear(ctx, w.q, x, n), k = run_linear(ctx, w.k, x, n), v = run_linear(ctx, w.v, x, n);
    const int64_t qs = c.heads * hd, ks = c.kv_heads * hd;
    if (w.q.out != qs || w.k.out != ks || w.v.out != ks)
        fail(KTQ_ERR_FORMAT, w.q.name + ": q/k/v output sizes do not match the heads and head_dim of config.json");
    if (!w.q_norm.empty()) rms_norm(q.data(), q.data(), w.q_norm.data(), n * c.heads, hd, c.rms_eps);
    if (!w.k_norm.empty()) rms_norm(k.data(), k.data(), w.k_norm.data(), n * c.kv_heads, hd, c.rms_eps);
    const Rope rope(c, seq_len);
    for (int64_t t = 0; t < n; ++t) {
        const int64_t pos = t % seq_len;
        for (int64_t h = 0; h < c.heads; ++h) rope.apply_half(&q[static_cast<size_t>(t * qs + h * hd)], pos);
        for (int64_t h = 0; h < c.kv_heads; ++h) rope.apply_half(&k[static_cast<size_t>(t * ks + h * hd)], pos);
    }
    std::vector<float> out(static_cast<size_t>(n * qs));
    attention(ctx, out.data(), q.data(), k.data(), v.data(), gqa_attention_shape(c, seqs, seq_len));
    return out;
}

// DeepSeek multi-head latent attention. Returns [tokens, heads * v_head_dim].
std::vector<float> mla_attention(const ForwardContext &ctx, const LayerWeights &w, const float *x, int64_t seqs,
                                 int64_t seq_len) {
    const ForwardConfig &c = *ctx.cfg;
    const int64_t n = seqs * seq_len, H = c.heads, dn = c.qk_nope_dim, dr = c.qk_rope_dim, dv = c.v_head_dim,
                  dqk = dn + dr, r = c.kv_lora_rank;
    std::vector<float> q;
    if (!w.q_a.empty()) {
        std::vector<float> qa = run_linear(ctx, w.q_a, x, n);
        rms_norm(qa.data(), qa.data(), w.q_a_norm.data(), n, w.q_a.out, c.rms_eps);
        q = run_linear(ctx, w.q_b, qa.data(), n);
    } else {
        q = run_linear(ctx, w.q, x, n);
    }
    std::vector<float> ckv = run_linear(ctx, w.kv_a, x, n);  // [n, r + dr]
    if (static_cast<int64_t>(q.size()) != n * H * dqk || w.kv_a.out != r + dr || w.kv_b.out != H * (dn + dv))
        fail(KTQ_ERR_FORMAT, w.kv_a.name + ": MLA projection sizes do not match config.json");
    std::vector<float> latent(static_cast<size_t>(n * r));
    for (int64_t t = 0; t < n; ++t)
        rms_norm(&latent[static_cast<size_t>(t * r)], &ckv[static_cast<size_t>(t * (r + dr))], w.kv_a_norm.data(), 1, r,
                 c.rms_eps);
    std::vector<float> kv = run_linear(ctx, w.kv_b, latent.data(), n);  // [n, H, dn + dv]
    // Keys [n, H, dqk]: the per-head no-RoPE part, then the shared rotated part.
    std::vector<float> key(static_cast<size_t>(n * H * dqk)), tmp(static_cast<size_t>(dr));
    const Rope rope(c, seq_len);
    for (int64_t t = 0; t < n; ++t) {
        const int64_t pos = t % seq_len;
        float *krot = &ckv[static_cast<size_t>(t * (r + dr) + r)];
        if (c.rope_interleave) rope.apply_interleaved(krot, pos, tmp.data());
        else rope.apply_half(krot, pos);
        for (int64_t h = 0; h < H; ++h) {
            float *qh = &q[static_cast<size_t>((t * H + h) * dqk)];
            if (c.rope_interleave) rope.apply_interleaved(qh + dn, pos, tmp.data());
            else rope.apply_half(qh + dn, pos);
            float *kh = &key[static_cast<size_t>((t * H + h) * dqk)];
            const float *src = &kv[static_cast<size_t>((t * H + h) * (dn + dv))];
            std::copy(src, src + dn, kh);
            std::copy(krot, krot + dr, kh + dn);
        }
    }
    std::vector<float> out(static_cast<size_t>(n * H * dv));
    attention(ctx, out.data(), q.data(), key.data(), kv.data() + dn, mla_attention_shape(c, seqs, seq_len));
    return out;
}

// SwiGLU MLP: down(silu(gate(x)) * up(x)).
std::vector<float> swiglu(const ForwardContext &ctx, const Linear &gate, const Linear &up, const Linear &down,
                          const float *x, int64_t rows) {
    if (ctx.matmul && !ctx.observer && gate.b.empty() && up.b.empty() && down.b.empty()) {
        // Nothing to observe: the backend may keep the intermediates on its device.
        std::vector<float> y(static_cast<size_t>(rows * down.out));
        if (ctx.matmul->swiglu(y.data(), x, gate.w.data(), up.w.data(), down.w.data(), rows, gate.in, gate.out,
                               down.out))
            return y;
    }
    const std::vector<float> h = swiglu_hidden(ctx, gate, up, x, rows);
    return run_linear(ctx, down, h.data(), rows);
}

}  // namespace

void choose_experts(const ForwardConfig &c, const LayerWeights &w, const float *logits, int64_t n,
                    std::vector<int32_t> &idx, std::vector<float> &wt) {
    const int64_t E = c.num_experts, K = c.top_k;
    idx.assign(static_cast<size_t>(n * K), 0);
    wt.assign(static_cast<size_t>(n * K), 0.0f);
    std::vector<float> p(static_cast<size_t>(E)), choice(static_cast<size_t>(E));
    std::vector<int32_t> order(static_cast<size_t>(E));
    for (int64_t t = 0; t < n; ++t) {
        const float *lt = logits + t * E;
        if (c.router == RouterKind::SoftmaxTopK) {
            const float mx = *std::max_element(lt, lt + E);
            float sum = 0;
            for (int64_t e = 0; e < E; ++e) sum += (p[static_cast<size_t>(e)] = std::exp(lt[e] - mx));
            for (float &v : p) v /= sum;
            choice = p;
        } else {
            for (int64_t e = 0; e < E; ++e) {
                p[static_cast<size_t>(e)] = 1.0f / (1.0f + std::exp(-lt[e]));
                choice[static_cast<size_t>(e)] = p[static_cast<size_t>(e)] + w.router_bias[static_cast<size_t>(e)];
            }
            // Keep the topk_group groups whose two best scores sum highest.
            const int64_t G = c.n_group, per = E / G;
            std::vector<std::pair<float, int64_t>> groups(static_cast<size_t>(G));
            for (int64_t g = 0; g < G; ++g) {
                std::vector<float> s(choice.begin() + g * per, choice.begin() + (g + 1) * per);
                std::partial_sort(s.begin(), s.begin() + std::min<int64_t>(2, per), s.end(), std::greater<float>());
                groups[static_cast<size_t>(g)] = {per >= 2 ? s[0] + s[1] : s[0], g};
            }
            std::stable_sort(groups.begin(), groups.end(), [](auto &a, auto &b) { return a.first > b.first; });
            for (int64_t gi = c.topk_group; gi < G; ++gi) {
                const int64_t g = groups[static_cast<size_t>(gi)].second;
                for (int64_t e = g * per; e < (g + 1) * per; ++e) choice[static_cast<size_t>(e)] = -INFINITY;
            }
        }
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int32_t a, int32_t b) {
            const float va = choice[static_cast<size_t>(a)], vb = choice[static_cast<size_t>(b)];
            return va > vb || (va == vb && a < b);
        });
        float sum = 0;
        for (int64_t j = 0; j < K; ++j) sum += p[static_cast<size_t>(order[static_cast<size_t>(j)])];
        for (int64_t j = 0; j < K; ++j) {
            const int32_t e = order[static_cast<size_t>(j)];
            float v = p[static_cast<size_t>(e)];
            if (c.norm_topk_prob) v /= (c.router == RouterKind::SigmoidGrouped ? sum + 1e-20f : sum);
            if (c.router == RouterKind::SigmoidGrouped) v *= c.routed_scaling_factor;
            idx[static_cast<size_t>(t * K + j)] = e;
            wt[static_cast<size_t>(t * K + j)] = v;
        }
    }
}

namespace {

// Router: for each token, its top_k experts and their weights.
void route(const ForwardContext &ctx, const LayerWeights &w, const float *x, int64_t n, std::vector<int32_t> &idx,
           std::vector<float> &wt) {
    std::vector<float> logits(static_cast<size_t>(n * ctx.cfg->num_experts));
    apply_linear(logits.data(), w.router, x, n, *ctx.pool, ctx.matmul);  // routers stay unquantized: not observed
    choose_experts(*ctx.cfg, w, logits.data(), n, idx, wt);
}

// Passes a routed expert's own inputs on as observe_routed().
class RoutedOnly : public ActivationObserver {
public:
    explicit RoutedOnly(ActivationObserver *inner) : inner_(inner) {}
    void observe(const Linear &linear, const float *x, int64_t rows) override { inner_->observe_routed(linear, x, rows); }

private:
    ActivationObserver *inner_;
};

std::vector<float> moe(const ForwardContext &ctx, const LayerWeights &w, const float *x, int64_t n) {
    const ForwardConfig &c = *ctx.cfg;
    const int64_t H = c.hidden, K = c.top_k;
    std::vector<int32_t> idx;
    std::vector<float> wt;
    route(ctx, w, x, n, idx, wt);
    std::vector<float> out(static_cast<size_t>(n * H), 0.0f);
    std::vector<float> gathered;
    for (int64_t e = 0; e < static_cast<int64_t>(w.experts.size()); ++e) {
        const ExpertWeights &ew = w.experts[static_cast<size_t>(e)];
        std::vector<int64_t> tokens;
        std::vector<float> weights;
        for (int64_t t = 0; t < n; ++t)
            for (int64_t j = 0; j < K; ++j)
                if (idx[static_cast<size_t>(t * K + j)] == e) {
                    tokens.push_back(t);
                    weights.push_back(wt[static_cast<size_t>(t * K + j)]);
                }
        if (ctx.expert_tokens) (*ctx.expert_tokens)[static_cast<size_t>(e)] += tokens.size();
        if (ctx.observer && !ctx.observer->observe_expert_all_tokens(ew, x, n)) {
            // All-experts calibration: the expert's Linears see every token.
            std::vector<float> g = run_linear(ctx, ew.gate, x, n), u = run_linear(ctx, ew.up, x, n);
            for (size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
            observe(ctx, ew.down, g.data(), n);
        }
        if (tokens.empty()) continue;
        const int64_t m = static_cast<int64_t>(tokens.size());
        gathered.resize(static_cast<size_t>(m * H));
        for (int64_t i = 0; i < m; ++i)
            std::copy(x + tokens[static_cast<size_t>(i)] * H, x + (tokens[static_cast<size_t>(i)] + 1) * H,
                      &gathered[static_cast<size_t>(i * H)]);
        RoutedOnly routed_observer(ctx.observer);
        const ForwardContext routed{ctx.cfg, ctx.pool, ctx.observer ? &routed_observer : nullptr, nullptr, ctx.matmul};
        std::vector<float> y = swiglu(routed, ew.gate, ew.up, ew.down, gathered.data(), m);
        for (int64_t i = 0; i < m; ++i) {
            float *o = &out[static_cast<size_t>(tokens[static_cast<size_t>(i)] * H)];
            const float s = weights[static_cast<size_t>(i)];
            for (int64_t d = 0; d < H; ++d) o[d] += s * y[static_cast<size_t>(i * H + d)];
        }
    }
    if (w.has_shared) {
        std::vector<float> y = swiglu(ctx, w.shared.gate, w.shared.up, w.shared.down, x, n);
        std::vector<float> gate;
        if (!w.shared_gate.empty()) {
            gate.resize(static_cast<size_t>(n));
            apply_linear(gate.data(), w.shared_gate, x, n, *ctx.pool, ctx.matmul);
        }
        for (int64_t t = 0; t < n; ++t) {
            const float s = gate.empty() ? 1.0f : 1.0f / (1.0f + std::exp(-gate[static_cast<size_t>(t)]));
            for (int64_t d = 0; d < H; ++d) out[static_cast<size_t>(t * H + d)] += s * y[static_cast<size_t>(t * H + d)];
        }
    }
    return out;
}

}  // namespace

std::vector<float> swiglu_hidden(const ForwardContext &ctx, const Linear &gate, const Linear &up, const float *x,
                                 int64_t rows) {
    std::vector<float> g(static_cast<size_t>(rows * gate.out));
    if (ctx.matmul && !ctx.observer && gate.b.empty() && up.b.empty() &&
        ctx.matmul->swiglu(g.data(), x, gate.w.data(), up.w.data(), nullptr, rows, gate.in, gate.out, 0))
        return g;
    g = run_linear(ctx, gate, x, rows);
    const std::vector<float> u = run_linear(ctx, up, x, rows);
    for (size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
    return g;
}

std::vector<float> attention_block(const ForwardContext &ctx, const LayerWeights &w, const float *x, int64_t seqs,
                                   int64_t seq_len) {
    std::vector<float> attn = ctx.cfg->mla ? mla_attention(ctx, w, x, seqs, seq_len) : gqa_attention(ctx, w, x, seqs, seq_len);
    return run_linear(ctx, w.o, attn.data(), seqs * seq_len);
}

std::vector<float> mlp_block(const ForwardContext &ctx, const LayerWeights &w, const float *x, int64_t rows) {
    return w.moe ? moe(ctx, w, x, rows) : swiglu(ctx, w.gate, w.up, w.down, x, rows);
}

void forward_layer(const ForwardContext &ctx, const LayerWeights &w, float *hidden, int64_t seqs, int64_t seq_len) {
    const ForwardConfig &c = *ctx.cfg;
    const int64_t n = seqs * seq_len, H = c.hidden;
    std::vector<float> x(static_cast<size_t>(n * H));
    rms_norm(x.data(), hidden, w.input_norm.data(), n, H, c.rms_eps);
    std::vector<float> o = attention_block(ctx, w, x.data(), seqs, seq_len);
    for (size_t i = 0; i < o.size(); ++i) hidden[i] += o[i];
    rms_norm(x.data(), hidden, w.post_norm.data(), n, H, c.rms_eps);
    std::vector<float> m = mlp_block(ctx, w, x.data(), n);
    for (size_t i = 0; i < m.size(); ++i) hidden[i] += m[i];
}

}  // namespace ktq
