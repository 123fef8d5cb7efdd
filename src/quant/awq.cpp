#include "quant/awq.h"

#include <algorithm>
#include <cmath>

#include "forward/matmul.h"
#include "runtime/dot.h"
#include "runtime/error.h"
#include "runtime/thread_pool.h"

namespace ktq::awq {

std::vector<float> abs_mean(const float *x, int64_t rows, int64_t in) {
    std::vector<double> sum(static_cast<size_t>(in), 0.0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < in; ++c) sum[static_cast<size_t>(c)] += std::fabs(x[r * in + c]);
    std::vector<float> out(sum.size());
    for (size_t c = 0; c < sum.size(); ++c) out[c] = rows > 0 ? static_cast<float>(sum[c] / rows) : 0.0f;
    return out;
}

std::vector<Candidate> grid(const Options &o) {
    std::vector<Candidate> g;
    if (o.duo_scaling) {
        if (o.grid < 3) fail(KTQ_ERR_INVALID_ARGUMENT, "AWQ grid must be at least 3 with duo scaling");
        g.push_back({0.0, false});  // identity: plain round to nearest
        for (int i = 0; i < o.grid - 1; ++i) g.push_back({static_cast<double>(i) / (o.grid - 2), true});
    } else {
        if (o.grid < 2) fail(KTQ_ERR_INVALID_ARGUMENT, "AWQ grid must be at least 2");
        for (int i = 0; i < o.grid; ++i) g.push_back({static_cast<double>(i) / (o.grid - 1), false});
    }
    return g;
}

std::vector<float> scales_of(const Candidate &c, const std::vector<float> &x_mean, const std::vector<float> &w_mean) {
    const float r = static_cast<float>(c.ratio), r1 = static_cast<float>(1.0 - c.ratio);
    std::vector<float> s(x_mean.size());
    for (size_t i = 0; i < s.size(); ++i) {
        float v = std::pow(x_mean[i], r);
        if (c.duo) v = v / (std::pow(w_mean[i], r1) + 1e-4f);
        s[i] = std::max(v, 1e-4f);
    }
    const auto [mn, mx] = std::minmax_element(s.begin(), s.end());
    const float norm = std::sqrt(*mx * *mn);
    for (float &v : s) {
        v /= norm;
        if (!std::isfinite(v)) v = 1.0f;
    }
    return s;
}

int64_t RoundTrip::group(int64_t in) const {
    if (ct) return ct->group_size > 0 ? ct->group_size : in;
    return ggml ? static_cast<int64_t>(ggml->block_size) : in;
}

std::vector<float> weight_mean(const std::vector<Balanced> &layers, int64_t in) {
    int64_t g = in;
    for (const Balanced &l : layers)
        if (l.quant) {
            g = l.quant->group(in);
            break;
        }
    std::vector<double> sum(static_cast<size_t>(in), 0.0);
    int64_t rows = 0;
    for (const Balanced &l : layers) {
        if (!l.quant) continue;  // llm-compressor skips layers it does not quantize
        for (int64_t r = 0; r < l.out; ++r) {
            const float *w = l.w + r * in;
            for (int64_t c0 = 0; c0 < in; c0 += g) {
                const int64_t c1 = std::min(in, c0 + g);
                float mx = 0;
                for (int64_t c = c0; c < c1; ++c) mx = std::max(mx, std::fabs(w[c]));
                for (int64_t c = c0; c < c1; ++c) sum[static_cast<size_t>(c)] += std::fabs(w[c]) / (mx + 1e-6f);
            }
        }
        rows += l.out;
    }
    std::vector<float> out(sum.size());
    for (size_t c = 0; c < sum.size(); ++c) out[c] = rows > 0 ? static_cast<float>(sum[c] / rows) : 0.0f;
    return out;
}

void fake_quantize_scaled(const RoundTrip &q, const float *w, int64_t rows, int64_t in, const float *s,
                          float *out, ThreadPool &pool) {
    if (!q.ct && !q.ggml) fail(KTQ_ERR_INTERNAL, "AWQ: a round trip without a quantizer");
    if (q.ggml && in % static_cast<int64_t>(q.ggml->block_size) != 0)
        fail(KTQ_ERR_INTERNAL, std::string("AWQ: rows of ") + std::to_string(in) + " values do not fit " + q.ggml->name);
    constexpr int64_t kChunk = 16;  // rows per task: fixed, so the bytes never depend on the thread count
    const size_t tasks = static_cast<size_t>((rows + kChunk - 1) / kChunk);
    const uint64_t cols = static_cast<uint64_t>(in);
    pool.parallel_for(tasks, [&](size_t t) {
        const int64_t r0 = static_cast<int64_t>(t) * kChunk, n = std::min(kChunk, rows - r0);
        thread_local std::vector<float> ws;  // kept between calls: the search calls this 20 times per Linear
        ws.resize(static_cast<size_t>(n * in));
        for (int64_t r = 0; r < n; ++r)
            for (int64_t c = 0; c < in; ++c) ws[static_cast<size_t>(r * in + c)] = w[(r0 + r) * in + c] * s[c];
        const uint64_t un = static_cast<uint64_t>(n);
        if (q.ct) {
            const ct::Scheme &scheme = *q.ct;
            ct::round_to_dtype(scheme.dtype, ws.data(), ws.size());
            thread_local std::vector<uint32_t> packed;
            thread_local std::vector<uint8_t> scales;
            thread_local std::vector<int8_t> zp;
            packed.resize(un * ct::packed_words_per_row(scheme, cols));
            scales.resize(ct::scale_bytes(scheme, un, cols));
            zp.resize(un * ct::groups_per_row(scheme, cols));
            ct::quantize_rows(scheme, ws.data(), un, cols, packed.data(), scales.data(),
                              scheme.symmetric ? nullptr : zp.data());
            ct::dequantize_rows(scheme, packed.data(), scales.data(), scheme.symmetric ? nullptr : zp.data(), un,
                                cols, ws.data());
        } else {
            ggml_round_trip(*q.ggml, ws.data(), ws.size());
        }
        for (int64_t r = 0; r < n; ++r)
            for (int64_t c = 0; c < in; ++c) ws[static_cast<size_t>(r * in + c)] /= s[c];
        if (q.ct) ct::round_to_dtype(q.ct->dtype, ws.data(), ws.size());
        std::copy(ws.begin(), ws.end(), out + r0 * in);
    });
}

// X^T X [in, in] of x [rows, in]: the loss of a weight change D is then
// sum(D G .* D), in*in*out work per layer instead of rows*in*out.
std::vector<float> input_gram(const float *x, int64_t rows, int64_t in, ThreadPool &pool, MatmulBackend *backend) {
    std::vector<float> xt(static_cast<size_t>(in * rows)), g(static_cast<size_t>(in * in));
    constexpr int64_t kCols = 16;  // columns of x per task: 16 rows of xt filled together
    pool.parallel_for(static_cast<size_t>((in + kCols - 1) / kCols), [&](size_t t) {
        const int64_t c0 = static_cast<int64_t>(t) * kCols, c1 = std::min(in, c0 + kCols);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = c0; c < c1; ++c) xt[static_cast<size_t>(c * rows + r)] = x[r * in + c];
    });
    matmul_abt(g.data(), xt.data(), xt.data(), in, rows, in, pool, backend, false);
    return g;
}

namespace {

// sum a[i] * b[i] in double, over fixed pieces on the pool, the pieces' sums added in order: the same value
// whatever the thread count.
double dot_on_pool(const float *a, const float *b, size_t n, ThreadPool &pool) {
    constexpr size_t kPiece = size_t(1) << 16;
    const size_t pieces = (n + kPiece - 1) / kPiece;
    std::vector<double> part(pieces, 0.0);
    pool.parallel_for(pieces, [&](size_t p) {
        double acc = 0;
        for (size_t k = p * kPiece; k < std::min(n, (p + 1) * kPiece); ++k) acc += static_cast<double>(a[k]) * b[k];
        part[p] = acc;
    });
    double total = 0;
    for (double v : part) total += v;
    return total;
}

}  // namespace

double linear_loss(const std::vector<Balanced> &layers, int64_t in, const float *x, int64_t rows,
                   const std::vector<float> &gram, const std::vector<float> &s, ThreadPool &pool,
                   MatmulBackend *backend) {
    constexpr int64_t kRowChunk = 2048;  // rows per product: bounds the output buffer
    std::vector<float> diff, y;
    double total = 0;
    int64_t outputs = 0;
    for (const Balanced &l : layers) {
        outputs += l.out;
        if (!l.quant) continue;  // unquantized: W s / s == W up to the dtype rounding, no error counted
        diff.resize(static_cast<size_t>(l.out * in));
        fake_quantize_scaled(*l.quant, l.w, l.out, in, s.data(), diff.data(), pool);
        constexpr size_t kPiece = size_t(1) << 16;
        pool.parallel_for((diff.size() + kPiece - 1) / kPiece, [&](size_t p) {
            for (size_t k = p * kPiece; k < std::min(diff.size(), (p + 1) * kPiece); ++k) diff[k] = l.w[k] - diff[k];
        });
        if (!gram.empty()) {  // sum over rows d of d^T G d
            for (int64_t r0 = 0; r0 < l.out; r0 += kRowChunk) {
                const int64_t n = std::min(kRowChunk, l.out - r0);
                y.resize(static_cast<size_t>(n * in));
                matmul_abt(y.data(), diff.data() + r0 * in, gram.data(), n, in, in, pool, backend, false);
                total += dot_on_pool(y.data(), diff.data() + r0 * in, y.size(), pool);
            }
            continue;
        }
        for (int64_t r0 = 0; r0 < rows; r0 += kRowChunk) {
            const int64_t n = std::min(kRowChunk, rows - r0);
            y.resize(static_cast<size_t>(n * l.out));
            matmul_abt(y.data(), x + r0 * in, diff.data(), n, in, l.out, pool, backend, false);
            total += dot_on_pool(y.data(), y.data(), y.size(), pool);
        }
    }
    return total / std::max<double>(1.0, static_cast<double>(rows) * static_cast<double>(outputs));
}

Search search(const std::vector<Balanced> &layers, int64_t in, const std::vector<float> &x_mean, const Options &o,
              const LossFn &loss) {
    if (static_cast<int64_t>(x_mean.size()) != in) fail(KTQ_ERR_INTERNAL, "AWQ: x_mean size differs from the input");
    const std::vector<Candidate> candidates = grid(o);
    const std::vector<float> w_mean = o.duo_scaling ? weight_mean(layers, in) : std::vector<float>();
    Search best;
    double best_loss = INFINITY;
    for (size_t i = 0; i < candidates.size(); ++i) {
        std::vector<float> s = scales_of(candidates[i], x_mean, w_mean);
        const double l = loss(s);
        best.losses.push_back(l);
        if (l < best_loss) {
            best_loss = l;
            best.best = static_cast<int>(i);
            best.chosen = candidates[i];
            best.scales = std::move(s);
        }
    }
    if (best.best < 0) {  // every loss NaN (non-finite inputs): no scaling
        best.best = 0;
        best.chosen = candidates[0];
        best.scales.assign(static_cast<size_t>(in), 1.0f);
    }
    return best;
}

std::vector<float> group_grams(const float *x, int64_t rows, int64_t in, int group, ThreadPool &pool) {
    const int64_t g = group > 0 ? group : in, groups = in / g;
    std::vector<float> grams(static_cast<size_t>(groups * g * g), 0.0f);
    // One task per (group, row of G): each sums over the tokens in a fixed order.
    pool.parallel_for(static_cast<size_t>(groups * g), [&](size_t task) {
        const int64_t gi = static_cast<int64_t>(task) / g, a = static_cast<int64_t>(task) % g;
        std::vector<double> sum(static_cast<size_t>(g), 0.0);
        std::vector<float> part(static_cast<size_t>(g));
        constexpr int64_t kBlock = 256;  // tokens summed in float before joining the double sum
        for (int64_t t0 = 0; t0 < rows; t0 += kBlock) {
            std::fill(part.begin(), part.end(), 0.0f);
            const int64_t t1 = std::min(rows, t0 + kBlock);
            for (int64_t t = t0; t < t1; ++t) {
                const float *xr = x + t * in + gi * g;
                const float xa = xr[a];
                for (int64_t b = 0; b < g; ++b) part[static_cast<size_t>(b)] += xa * xr[b];
            }
            for (int64_t b = 0; b < g; ++b) sum[static_cast<size_t>(b)] += part[static_cast<size_t>(b)];
        }
        float *out = &grams[static_cast<size_t>((gi * g + a) * g)];
        for (int64_t b = 0; b < g; ++b) out[b] = static_cast<float>(sum[static_cast<size_t>(b)]);
    });
    return grams;
}


uint64_t clip(const ct::Scheme &scheme, float *w, int64_t out, int64_t in, const std::vector<float> &grams, int grid,
              double max_shrink, ThreadPool &pool) {
    const int64_t g = scheme.group_size > 0 ? scheme.group_size : in, groups = in / g;
    if (static_cast<int64_t>(grams.size()) != groups * g * g) fail(KTQ_ERR_INTERNAL, "AWQ clip: Gram size mismatch");
    const int steps = static_cast<int>(max_shrink * grid);
    const uint64_t cols = static_cast<uint64_t>(in);
    std::vector<uint64_t> clipped(static_cast<size_t>(out), 0);
    pool.parallel_for(static_cast<size_t>(out), [&](size_t row) {
        float *wr = w + static_cast<int64_t>(row) * in;
        std::vector<float> max0(static_cast<size_t>(groups)), best_max(static_cast<size_t>(groups));
        std::vector<double> best_err(static_cast<size_t>(groups), INFINITY);
        for (int64_t gi = 0; gi < groups; ++gi) {
            float m = 0;
            for (int64_t c = gi * g; c < (gi + 1) * g; ++c) m = std::max(m, std::fabs(wr[c]));
            max0[static_cast<size_t>(gi)] = best_max[static_cast<size_t>(gi)] = m;
        }
        // The clamp bound in the model's dtype (torch clamps a BF16 weight with a BF16 bound).
        auto limit = [&](int64_t gi, int i) {
            float mx = max0[static_cast<size_t>(gi)] * (1.0f - static_cast<float>(i) / static_cast<float>(grid));
            ct::round_to_dtype(scheme.dtype, &mx, 1);
            return mx;
        };
        std::vector<float> cw(static_cast<size_t>(in)), d(static_cast<size_t>(g));
        std::vector<uint32_t> packed(ct::packed_words_per_row(scheme, cols));
        std::vector<uint8_t> sc(ct::scale_bytes(scheme, 1, cols));
        std::vector<int8_t> zp(static_cast<size_t>(groups));
        for (int i = 0; i < steps; ++i) {
            for (int64_t gi = 0; gi < groups; ++gi) {
                const float mx = limit(gi, i);
                for (int64_t c = gi * g; c < (gi + 1) * g; ++c)
                    cw[static_cast<size_t>(c)] = std::min(std::max(wr[c], -mx), mx);
            }
            std::vector<float> q(cw);
            ct::quantize_rows(scheme, q.data(), 1, cols, packed.data(), sc.data(), scheme.symmetric ? nullptr : zp.data());
            ct::dequantize_rows(scheme, packed.data(), sc.data(), scheme.symmetric ? nullptr : zp.data(), 1, cols,
                                q.data());
            for (int64_t gi = 0; gi < groups; ++gi) {
                for (int64_t k = 0; k < g; ++k) d[static_cast<size_t>(k)] = q[static_cast<size_t>(gi * g + k)] - wr[gi * g + k];
                const float *G = &grams[static_cast<size_t>(gi * g * g)];
                double err = 0;
                for (int64_t a = 0; a < g; ++a)
                    err += static_cast<double>(d[static_cast<size_t>(a)]) * dot8(G + a * g, d.data(), g);
                if (err < best_err[static_cast<size_t>(gi)]) {
                    best_err[static_cast<size_t>(gi)] = err;
                    best_max[static_cast<size_t>(gi)] = limit(gi, i);
                }
            }
        }
        for (int64_t gi = 0; gi < groups; ++gi) {
            const float mx = best_max[static_cast<size_t>(gi)];
            if (mx >= max0[static_cast<size_t>(gi)]) continue;
            ++clipped[row];
            for (int64_t c = gi * g; c < (gi + 1) * g; ++c) wr[c] = std::min(std::max(wr[c], -mx), mx);
        }
    });
    uint64_t total = 0;
    for (uint64_t c : clipped) total += c;
    return total;
}

}  // namespace ktq::awq
