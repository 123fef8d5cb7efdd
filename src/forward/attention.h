// Causal softmax attention over windows of equal length, the one part of a
// decoder layer that is not a Linear's product. Queries, keys and values
// are read where the projections left them: rows of a token-major buffer,
// each head at its own offset in the row, so GQA (several query heads per
// key/value head) and DeepSeek's MLA (values inside the kv_b output) need
// no copies. The CPU version runs on the pool; a MatmulBackend may offer
// the same on its device (MatmulBackend::causal_attention).
#pragma once

#include <cstdint>

namespace ktq {

class ThreadPool;

struct AttentionShape {
    int64_t seqs = 0, seq_len = 0;  // windows; positions restart at 0 in each
    int64_t heads = 0;              // query heads
    int64_t group = 1;              // query heads per key/value head (key/value head = head / group)
    int64_t dq = 0, dv = 0;         // query/key and value lengths per head
    // In floats: the distance between two tokens' rows, and between two heads within a row.
    int64_t q_row = 0, q_head = 0, k_row = 0, k_head = 0, v_row = 0, v_head = 0, out_row = 0, out_head = 0;
    float scale = 1.0f;  // applied to q.k before the softmax

    int64_t tokens() const { return seqs * seq_len; }
    int64_t kv_heads() const { return heads / group; }
};

// out[token, head] = sum over earlier positions s <= t of softmax_s(scale q_t.k_s) v_s, per window and head.
// Writes only the [dv] values of each (token, head) at out + token * out_row + head * out_head.
void causal_attention(float *out, const float *q, const float *k, const float *v, const AttentionShape &a,
                      ThreadPool &pool);

}  // namespace ktq
