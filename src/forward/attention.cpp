#include "forward/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/dot.h"
#include "runtime/thread_pool.h"

namespace ktq {

namespace {

// One (window, head): q, k, v and out point at its first token.
void attend(float *out, int64_t out_stride, const float *q, int64_t q_stride, const float *k, int64_t k_stride,
            const float *v, int64_t v_stride, int64_t seq_len, int64_t dq, int64_t dv, float scale,
            std::vector<float> &scores) {
    scores.resize(static_cast<size_t>(seq_len));
    for (int64_t t = 0; t < seq_len; ++t) {
        const float *qt = q + t * q_stride;
        float mx = -INFINITY;
        for (int64_t s = 0; s <= t; ++s) {
            const float acc = dot8(qt, k + s * k_stride, dq);
            scores[static_cast<size_t>(s)] = acc * scale;
            mx = std::max(mx, acc * scale);
        }
        float sum = 0;
        for (int64_t s = 0; s <= t; ++s) {
            const float e = std::exp(scores[static_cast<size_t>(s)] - mx);
            scores[static_cast<size_t>(s)] = e;
            sum += e;
        }
        float *ot = out + t * out_stride;
        std::fill(ot, ot + dv, 0.0f);
        for (int64_t s = 0; s <= t; ++s) {
            const float p = scores[static_cast<size_t>(s)] / sum;
            const float *vs = v + s * v_stride;
            for (int64_t i = 0; i < dv; ++i) ot[i] += p * vs[i];
        }
    }
}

}  // namespace

void causal_attention(float *out, const float *q, const float *k, const float *v, const AttentionShape &a,
                      ThreadPool &pool) {
    pool.parallel_for(static_cast<size_t>(a.seqs * a.heads), [&](size_t job) {
        thread_local std::vector<float> scores;
        const int64_t sq = static_cast<int64_t>(job) / a.heads, h = static_cast<int64_t>(job) % a.heads;
        const int64_t base = sq * a.seq_len, kvh = h / a.group;
        attend(out + base * a.out_row + h * a.out_head, a.out_row, q + base * a.q_row + h * a.q_head, a.q_row,
               k + base * a.k_row + kvh * a.k_head, a.k_row, v + base * a.v_row + kvh * a.v_head, a.v_row, a.seq_len,
               a.dq, a.dv, a.scale, scores);
    });
}

}  // namespace ktq
