#include "forward/causal_lm.h"

#include <algorithm>
#include <cmath>

#include "forward/decoder_layer.h"
#include "forward/layer_weights.h"
#include "forward/matmul.h"
#include "runtime/error.h"

namespace ktq {

std::vector<float> embed_tokens(const Model &model, const ForwardConfig &cfg, const int32_t *tokens, int64_t n) {
    const MatrixView table = model.matrix(cfg.prefix + "embed_tokens.weight");
    if (static_cast<int64_t>(table.cols) != cfg.hidden)
        fail(KTQ_ERR_FORMAT, table.tensor + ": " + std::to_string(table.cols) + " columns, hidden_size is " +
                                 std::to_string(cfg.hidden));
    std::vector<float> out(static_cast<size_t>(n * cfg.hidden));
    for (int64_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || static_cast<uint64_t>(tokens[i]) >= table.rows)
            fail(KTQ_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[i]) + " is outside the embedding table (" +
                                               std::to_string(table.rows) + " rows)");
        model.read_rows(table, static_cast<uint64_t>(tokens[i]), 1, KTQ_DTYPE_F32, &out[static_cast<size_t>(i * cfg.hidden)]);
    }
    return out;
}

MatrixView lm_head(const Model &model, const ForwardConfig &cfg) {
    const MatrixView head = model.matrix(cfg.lm_head);
    if (static_cast<int64_t>(head.cols) != cfg.hidden)
        fail(KTQ_ERR_FORMAT, cfg.lm_head + ": columns differ from hidden_size");
    return head;
}

std::vector<double> nll_from_logsumexp(const std::vector<float> &run_max, const std::vector<double> &run_sum,
                                       const std::vector<float> &target, const int32_t *tokens, int64_t seqs,
                                       int64_t seq_len, int64_t vocab) {
    const int64_t n = seqs * seq_len;
    std::vector<double> nll;
    nll.reserve(static_cast<size_t>(seqs * (seq_len - 1)));
    for (int64_t t = 0; t < n; ++t) {
        if (t % seq_len == seq_len - 1) continue;
        if (tokens[t + 1] < 0 || tokens[t + 1] >= vocab)
            fail(KTQ_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[t + 1]) + " is outside the LM head");
        nll.push_back(run_max[static_cast<size_t>(t)] + std::log(run_sum[static_cast<size_t>(t)]) -
                      target[static_cast<size_t>(t)]);
    }
    return nll;
}

std::vector<double> next_token_nll(const Model &model, const ForwardConfig &cfg, float *hidden, const int32_t *tokens,
                                   int64_t seqs, int64_t seq_len, MatmulBackend *backend) {
    const int64_t n = seqs * seq_len, H = cfg.hidden;
    const std::vector<float> norm = load_vector(model, cfg.prefix + "norm.weight");
    rms_norm(hidden, hidden, norm.data(), n, H, cfg.rms_eps);
    const MatrixView head = lm_head(model, cfg);
    const int64_t V = static_cast<int64_t>(head.rows);
    // Running log-sum-exp per token, and the target's logit.
    std::vector<float> run_max(static_cast<size_t>(n), -INFINITY), target(static_cast<size_t>(n), 0.0f);
    std::vector<double> run_sum(static_cast<size_t>(n), 0.0);
    constexpr int64_t kVocabChunk = 4096, kTokenChunk = 4096;
    std::vector<float> w, logits;
    for (int64_t v0 = 0; v0 < V; v0 += kVocabChunk) {
        const int64_t vc = std::min(kVocabChunk, V - v0);
        w.resize(static_cast<size_t>(vc * H));
        model.read_rows(head, static_cast<uint64_t>(v0), static_cast<uint64_t>(vc), KTQ_DTYPE_F32, w.data());
        for (int64_t t0 = 0; t0 < n; t0 += kTokenChunk) {
            const int64_t tc = std::min(kTokenChunk, n - t0);
            logits.resize(static_cast<size_t>(tc * vc));
            matmul_abt(logits.data(), hidden + t0 * H, w.data(), tc, H, vc, model.pool(), backend, false);
            model.pool().parallel_for(static_cast<size_t>(tc), [&](size_t i) {
                const int64_t t = t0 + static_cast<int64_t>(i);
                const float *l = &logits[i * static_cast<size_t>(vc)];
                const float mx = std::max(run_max[static_cast<size_t>(t)], *std::max_element(l, l + vc));
                double s = run_sum[static_cast<size_t>(t)] * std::exp(static_cast<double>(run_max[static_cast<size_t>(t)]) - mx);
                for (int64_t j = 0; j < vc; ++j) s += std::exp(static_cast<double>(l[j]) - mx);
                run_max[static_cast<size_t>(t)] = mx;
                run_sum[static_cast<size_t>(t)] = s;
                if (t % seq_len != seq_len - 1) {
                    const int32_t next = tokens[t + 1];
                    if (next >= v0 && next < v0 + vc) target[static_cast<size_t>(t)] = l[next - v0];
                }
            });
        }
    }
    return nll_from_logsumexp(run_max, run_sum, target, tokens, seqs, seq_len, V);
}

}  // namespace ktq
