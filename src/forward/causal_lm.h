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

}  // namespace ktq
