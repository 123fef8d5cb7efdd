#include "quant/awq.h"

#include <algorithm>
#include <cmath>

#include "forward/matmul.h"
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

std::vector<float> candidate(const std::vector<float> &x_mean, const std::vector<float> &w_mean, int i,
                             const Options &o) {
    const float r = static_cast<float>(i) / static_cast<float>(o.grid);
    std::vector<float> s(x_mean.size());
    for (size_t c = 0; c < s.size(); ++c) {
        float v = std::pow(x_mean[c], r);
        if (o.duo_scaling) v = v / (std::pow(w_mean[c], 1.0f - r) + 1e-4f);
        s[c] = std::max(v, 1e-4f);
    }
    const auto [mn, mx] = std::minmax_element(s.begin(), s.end());
    const float norm = std::sqrt(*mx * *mn);
    for (float &v : s) {
        v /= norm;
        if (!std::isfinite(v)) v = 1.0f;
    }
    return s;
}

std::vector<float> weight_mean(const std::vector<Balanced> &layers, int64_t in, int group_size) {
    const int64_t g = group_size > 0 ? group_size : in;
    std::vector<double> sum(static_cast<size_t>(in), 0.0);
    int64_t rows = 0;
    for (const Balanced &l : layers) {
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

void fake_quantize_scaled(const ct::Scheme &scheme, const float *w, int64_t rows, int64_t in, const float *s,
                          float *out, ThreadPool &pool) {
    constexpr int64_t kChunk = 16;  // rows per task: fixed, so the bytes never depend on the thread count
    const size_t tasks = static_cast<size_t>((rows + kChunk - 1) / kChunk);
    const uint64_t cols = static_cast<uint64_t>(in);
    pool.parallel_for(tasks, [&](size_t t) {
        const int64_t r0 = static_cast<int64_t>(t) * kChunk, n = std::min(kChunk, rows - r0);
        std::vector<float> ws(static_cast<size_t>(n * in));
        for (int64_t r = 0; r < n; ++r)
            for (int64_t c = 0; c < in; ++c) ws[static_cast<size_t>(r * in + c)] = w[(r0 + r) * in + c] * s[c];
        ct::round_to_dtype(scheme.dtype, ws.data(), ws.size());
        const uint64_t un = static_cast<uint64_t>(n);
        std::vector<uint32_t> packed(un * ct::packed_words_per_row(scheme, cols));
        std::vector<uint8_t> scales(ct::scale_bytes(scheme, un, cols));
        std::vector<int8_t> zp(un * ct::groups_per_row(scheme, cols));
        ct::quantize_rows(scheme, ws.data(), un, cols, packed.data(), scales.data(),
                          scheme.symmetric ? nullptr : zp.data());
        ct::dequantize_rows(scheme, packed.data(), scales.data(), scheme.symmetric ? nullptr : zp.data(), un, cols,
                            ws.data());
        for (int64_t r = 0; r < n; ++r)
            for (int64_t c = 0; c < in; ++c) ws[static_cast<size_t>(r * in + c)] /= s[c];
        ct::round_to_dtype(scheme.dtype, ws.data(), ws.size());
        std::copy(ws.begin(), ws.end(), out + r0 * in);
    });
}

double loss(const std::vector<Balanced> &layers, int64_t in, const float *x, int64_t rows, const float *s,
            ThreadPool &pool) {
    constexpr int64_t kRowChunk = 2048;  // rows of x per product: bounds the output buffer
    std::vector<float> diff, y;
    double total = 0;
    int64_t outputs = 0;
    for (const Balanced &l : layers) {
        outputs += l.out;
        if (!l.scheme) continue;  // unquantized: W s / s == W up to the dtype rounding, no error counted
        diff.resize(static_cast<size_t>(l.out * in));
        fake_quantize_scaled(*l.scheme, l.w, l.out, in, s, diff.data(), pool);
        for (size_t k = 0; k < diff.size(); ++k) diff[k] = l.w[k] - diff[k];
        for (int64_t r0 = 0; r0 < rows; r0 += kRowChunk) {
            const int64_t n = std::min(kRowChunk, rows - r0);
            y.resize(static_cast<size_t>(n * l.out));
            matmul_abt(y.data(), x + r0 * in, diff.data(), n, in, l.out, pool);
            double part = 0;
            for (float v : y) part += static_cast<double>(v) * v;
            total += part;
        }
    }
    return total / std::max<double>(1.0, static_cast<double>(rows) * static_cast<double>(outputs));
}

Search search(const std::vector<Balanced> &layers, int64_t in, const float *x, int64_t rows,
              const std::vector<float> &x_mean, const Options &o, ThreadPool &pool) {
    if (o.grid < 1) fail(KTQ_ERR_INVALID_ARGUMENT, "AWQ grid must be at least 1");
    if (static_cast<int64_t>(x_mean.size()) != in) fail(KTQ_ERR_INTERNAL, "AWQ: x_mean size differs from the input");
    int group = -1;
    for (const Balanced &l : layers)
        if (l.scheme) {
            group = l.scheme->group_size;
            break;
        }
    const std::vector<float> w_mean = o.duo_scaling ? weight_mean(layers, in, group) : std::vector<float>();
    Search best;
    double best_loss = INFINITY;
    for (int i = 0; i < o.grid; ++i) {
        const std::vector<float> s = candidate(x_mean, w_mean, i, o);
        const double l = loss(layers, in, x, rows, s.data(), pool);
        best.losses.push_back(l);
        if (l < best_loss) {
            best_loss = l;
            best.best = i;
            best.scales = s;
        }
    }
    if (best.best < 0) {  // every loss NaN (non-finite inputs): no scaling
        best.best = 0;
        best.scales.assign(static_cast<size_t>(in), 1.0f);
    }
    return best;
}

}  // namespace ktq::awq
