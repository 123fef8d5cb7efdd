// The ends of a causal LM around the decoder layers: token embedding, and
// final norm + LM head turned straight into next-token losses (the logits
// are never held whole: the head is read in vocabulary chunks and a running
// log-sum-exp is kept per token, so memory stays bounded on 100k+ vocabularies).
#pragma once

#include <cstdint>
#include <vector>

#include "forward/forward_config.h"
#include "forward/matmul.h"
#include "reading/model.h"

namespace ktq {

// [n, hidden] rows of the embedding table for `tokens` (ids checked).
std::vector<float> embed_tokens(const Model &model, const ForwardConfig &cfg, const int32_t *tokens, int64_t n);

// Applies the final norm to `hidden` ([seqs * seq_len, hidden], in place) and
// returns, per sequence position that has a next token (seq_len - 1 per
// sequence), -log p(next token): [seqs * (seq_len - 1)].
// The LM head's products run on `backend` when given.
std::vector<double> next_token_nll(const Model &model, const ForwardConfig &cfg, float *hidden, const int32_t *tokens,
                                   int64_t seqs, int64_t seq_len, MatmulBackend *backend = nullptr);

// The LM head (cfg.lm_head), its width checked against hidden_size.
MatrixView lm_head(const Model &model, const ForwardConfig &cfg);

// The losses from a running log-sum-exp over the vocabulary: per position t,
// max logit, sum of exp(logit - max) and the next token's logit, [seqs *
// seq_len] each; returns next_token_nll()'s [seqs * (seq_len - 1)], failing
// on a next token outside the vocabulary.
std::vector<double> nll_from_logsumexp(const std::vector<float> &run_max, const std::vector<double> &run_sum,
                                       const std::vector<float> &target, const int32_t *tokens, int64_t seqs,
                                       int64_t seq_len, int64_t vocab);

}  // namespace ktq
