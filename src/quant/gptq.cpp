#include "quant/gptq.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "forward/matmul.h"
#include "quant/ct_rtn_math.h"
#include "runtime/error.h"
#include "runtime/thread_pool.h"

namespace ktq::gptq {

namespace {

constexpr int64_t kRowsPerTask = 8;  // fixed: the work split never depends on the thread count

int dtype_code(ktq_dtype d) {
    return d == KTQ_DTYPE_BF16 ? ct::math::kBF16 : d == KTQ_DTYPE_F16 ? ct::math::kF16 : ct::math::kF32;
}

// The upper Cholesky factor of the inverse of the damped Hessian, as
// llm-compressor's factorize_hessian computes it (here in float64):
// cholesky(H + damp I) -> cholesky_inverse -> cholesky(upper). Returns false
// when H + damp I is not positive definite.
bool inverse_factor(std::vector<double> &h, int64_t n) {
    const lapack_int N = static_cast<lapack_int>(n);
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', N, h.data(), N) != 0) return false;
    if (LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'U', N, h.data(), N) != 0) return false;
    for (int64_t i = 0; i < n; ++i)  // dpotri fills the upper triangle: mirror it
        for (int64_t j = 0; j < i; ++j) h[static_cast<size_t>(i * n + j)] = h[static_cast<size_t>(j * n + i)];
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', N, h.data(), N) != 0) return false;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < i; ++j) h[static_cast<size_t>(i * n + j)] = 0.0;
    return true;
}

}  // namespace

void Hessian::add(const float *x, int64_t n, ThreadPool &pool) {
    if (n <= 0) return;
    // sum += x^T x, as one product of x^T with itself.
    std::vector<float> xt(static_cast<size_t>(n * cols_)), prod(static_cast<size_t>(cols_ * cols_));
    for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < cols_; ++c) xt[static_cast<size_t>(c * n + r)] = x[r * cols_ + c];
    matmul_abt(prod.data(), xt.data(), xt.data(), cols_, n, cols_, pool);
    for (size_t i = 0; i < prod.size(); ++i) sum_[i] += prod[i];
    rows_ += static_cast<uint64_t>(n);
}

void Hessian::merge(const Hessian &other) {
    if (other.cols_ != cols_) fail(KTQ_ERR_INTERNAL, "Hessian::merge: sizes differ");
    for (size_t i = 0; i < sum_.size(); ++i) sum_[i] += other.sum_[i];
    rows_ += other.rows_;
}

std::vector<float> Hessian::normalized() const {
    std::vector<float> h(sum_.size(), 0.0f);
    if (rows_ == 0) return h;
    const float f = 2.0f / static_cast<float>(rows_);
    for (size_t i = 0; i < h.size(); ++i) h[i] = sum_[i] * f;
    return h;
}

FactorPlan plan_factor(const std::vector<double> &diag, const Options &opts) {
    if (!(opts.dampening_frac >= 0)) fail(KTQ_ERR_INVALID_ARGUMENT, "dampening fraction must be >= 0");
    const int64_t cols = static_cast<int64_t>(diag.size());
    FactorPlan p;
    std::vector<double> d = diag;
    p.dead.assign(static_cast<size_t>(cols), 0);
    for (int64_t c = 0; c < cols; ++c)
        if (d[static_cast<size_t>(c)] == 0.0) {
            p.dead[static_cast<size_t>(c)] = 1;
            d[static_cast<size_t>(c)] = 1.0;
        }
    p.perm.resize(static_cast<size_t>(cols));
    std::iota(p.perm.begin(), p.perm.end(), 0);
    if (opts.act_order == ActOrder::Static)
        std::stable_sort(p.perm.begin(), p.perm.end(),
                         [&](int64_t a, int64_t b) { return d[static_cast<size_t>(a)] > d[static_cast<size_t>(b)]; });
    double mean_diag = 0;
    for (int64_t c = 0; c < cols; ++c) mean_diag += d[static_cast<size_t>(p.perm[static_cast<size_t>(c)])];
    mean_diag /= static_cast<double>(cols);
    p.damp = opts.dampening_frac * mean_diag;
    return p;
}

Factor factorize(const std::vector<float> &h_in, int64_t cols, const Options &opts) {
    if (static_cast<int64_t>(h_in.size()) != cols * cols)
        fail(KTQ_ERR_INVALID_ARGUMENT, "Hessian is not [cols, cols]");
    std::vector<double> diag(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) diag[static_cast<size_t>(c)] = h_in[static_cast<size_t>(c * cols + c)];
    FactorPlan plan = plan_factor(diag, opts);
    Factor f;
    f.cols = cols;
    // The damped Hessian in quantization order; a dead column's diagonal is 1.
    std::vector<double> hp(static_cast<size_t>(cols * cols));
    for (int64_t i = 0; i < cols; ++i)
        for (int64_t j = 0; j < cols; ++j) {
            const int64_t a = plan.perm[static_cast<size_t>(i)], b = plan.perm[static_cast<size_t>(j)];
            double v = h_in[static_cast<size_t>(a * cols + b)];
            if (i == j && plan.dead[static_cast<size_t>(a)]) v = 1.0;
            hp[static_cast<size_t>(i * cols + j)] = v;
        }
    for (int64_t c = 0; c < cols; ++c) hp[static_cast<size_t>(c * cols + c)] += plan.damp;
    if (!inverse_factor(hp, cols)) {
        f.rtn_fallback = true;  // as llm-compressor: identity factor, i.e. round to nearest
        std::fill(hp.begin(), hp.end(), 0.0);
        for (int64_t c = 0; c < cols; ++c) hp[static_cast<size_t>(c * cols + c)] = 1.0;
    }
    f.hinv.assign(hp.begin(), hp.end());  // float32, as the reference's loop
    f.dead = std::move(plan.dead);
    f.perm = std::move(plan.perm);
    return f;
}

std::vector<ct::math::GroupParams> weight_params(const float *w, int64_t rows, int64_t cols, const ct::Scheme &s,
                                                 ThreadPool *pool) {
    const int64_t glen = s.group_size > 0 ? s.group_size : cols, groups = cols / glen;
    ct::Scheme observed = s;
    observed.dtype_rounding = false;  // GPTQ's codes are rounded in float32: so are the MSE observer's candidates
    std::vector<float> scales(static_cast<size_t>(rows * groups)), zps(scales.size());
    auto chunk = [&](size_t c) {  // the MSE observer is worth spreading; groups are independent
        const int64_t r0 = static_cast<int64_t>(c) * kRowsPerTask, r1 = std::min(rows, r0 + kRowsPerTask);
        ct::group_params_rows(observed, w + r0 * cols, static_cast<uint64_t>(r1 - r0), static_cast<uint64_t>(cols),
                              &scales[static_cast<size_t>(r0 * groups)], &zps[static_cast<size_t>(r0 * groups)]);
    };
    const size_t chunks = static_cast<size_t>((rows + kRowsPerTask - 1) / kRowsPerTask);
    if (pool && s.observer != ct::Observer::kMinMax)
        pool->parallel_for(chunks, chunk);
    else
        for (size_t c = 0; c < chunks; ++c) chunk(c);
    std::vector<ct::math::GroupParams> params(scales.size());
    for (size_t i = 0; i < params.size(); ++i) params[i] = {scales[i], zps[i]};
    return params;
}

void check_problem(int64_t rows, int64_t cols, const Options &opts) {
    const ct::Scheme &s = opts.scheme;
    if (auto p = ct::scheme_problem(s); !p.empty()) fail(KTQ_ERR_INVALID_ARGUMENT, p);
    if (auto p = ct::shape_problem(s, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols)); !p.empty())
        fail(KTQ_ERR_INVALID_ARGUMENT, p);
    if (opts.block_size < 1) fail(KTQ_ERR_INVALID_ARGUMENT, "GPTQ block size must be at least 1");
}

void finish(Result &r, const std::vector<ct::math::GroupParams> &params, int64_t rows, int64_t cols,
            const ct::Scheme &s) {
    const int dt = dtype_code(s.dtype);
    const int64_t glen = s.group_size > 0 ? s.group_size : cols, groups = cols / glen;
    r.dequantized.assign(static_cast<size_t>(rows * cols), 0.0f);
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t c = 0; c < cols; ++c)
            r.dequantized[static_cast<size_t>(i * cols + c)] = ct::math::value_of(
                dt, r.codes[static_cast<size_t>(i * cols + c)], params[static_cast<size_t>(i * groups + c / glen)]);
    r.scales.resize(params.size());
    for (size_t i = 0; i < params.size(); ++i) r.scales[i] = params[i].scale;
    r.zero_points.clear();
    if (!s.symmetric) {
        r.zero_points.resize(params.size());
        for (size_t i = 0; i < params.size(); ++i) r.zero_points[i] = static_cast<int8_t>(params[i].zp);
    }
}

Result quantize(const float *w, int64_t rows, int64_t cols, const std::vector<float> &h, const Options &opts,
                ThreadPool &pool) {
    return quantize(w, rows, cols, factorize(h, cols, opts), opts, pool);
}

Result quantize(const float *w, int64_t rows, int64_t cols, const Factor &f, const Options &opts, ThreadPool &pool) {
    const ct::Scheme &s = opts.scheme;
    check_problem(rows, cols, opts);
    if (f.cols != cols) fail(KTQ_ERR_INVALID_ARGUMENT, "Hessian factor is not [cols, cols]");
    const int64_t glen = s.group_size > 0 ? s.group_size : cols, groups = cols / glen;
    const float qmin = -static_cast<float>(1 << (s.bits - 1)), qmax = static_cast<float>((1 << (s.bits - 1)) - 1);
    const int dt = dtype_code(s.dtype);

    Result r;
    r.rtn_fallback = f.rtn_fallback;
    // 1. Observer on the original weights: one scale (and zero point) per row and group.
    const std::vector<ct::math::GroupParams> params = weight_params(w, rows, cols, s, &pool);
    const std::vector<uint8_t> &dead = f.dead;
    const std::vector<int64_t> &perm = f.perm;
    const std::vector<float> &hinv = f.hinv;

    // 3. Column loop, rows in fixed chunks.
    r.codes.assign(static_cast<size_t>(rows * cols), 0);
    const int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask, B = opts.block_size;
    std::vector<double> task_loss(static_cast<size_t>(tasks), 0.0);
    pool.parallel_for(static_cast<size_t>(tasks), [&](size_t t) {
        const int64_t r0 = static_cast<int64_t>(t) * kRowsPerTask, r1 = std::min(rows, r0 + kRowsPerTask);
        std::vector<float> W(static_cast<size_t>(cols)), err(static_cast<size_t>(B)), acc(static_cast<size_t>(cols));
        double loss = 0;
        for (int64_t i = r0; i < r1; ++i) {
            for (int64_t j = 0; j < cols; ++j)  // permuted working copy, dead columns zeroed
                W[static_cast<size_t>(j)] = dead[static_cast<size_t>(perm[static_cast<size_t>(j)])]
                                                ? 0.0f
                                                : w[i * cols + perm[static_cast<size_t>(j)]];
            for (int64_t i1 = 0; i1 < cols; i1 += B) {
                const int64_t i2 = std::min(cols, i1 + B);
                for (int64_t k = i1; k < i2; ++k) {
                    const int64_t col = perm[static_cast<size_t>(k)];
                    const ct::math::GroupParams &p = params[static_cast<size_t>(i * groups + col / glen)];
                    const float x = W[static_cast<size_t>(k)];
                    // The code from x / scale (+ zp) in float32; q is what the code stands for
                    // in the model dtype (the stored weight), whose error is spread, as
                    // llm-compressor 0.14's block update does.
                    float v = x / p.scale;
                    if (p.zp != 0.0f) v = v + p.zp;
                    const float code = std::nearbyint(std::min(std::max(v, qmin), qmax));
                    const float q = ct::math::value_of(dt, static_cast<int>(code), p);
                    r.codes[static_cast<size_t>(i * cols + col)] = static_cast<int8_t>(code);
                    const float d = hinv[static_cast<size_t>(k * cols + k)];
                    const float e = (x - q) / d;
                    err[static_cast<size_t>(k - i1)] = e;
                    loss += static_cast<double>(e) * e / 2;
                    const float *hrow = &hinv[static_cast<size_t>(k * cols)];
                    for (int64_t j = k; j < i2; ++j) W[static_cast<size_t>(j)] -= e * hrow[j];
                }
                // Lazy update of the columns after the block: W[i2:] -= err . Hinv[i1:i2, i2:]
                if (i2 < cols) {
                    std::fill(acc.begin() + i2, acc.end(), 0.0f);
                    for (int64_t k = i1; k < i2; ++k) {
                        const float e = err[static_cast<size_t>(k - i1)];
                        const float *hrow = &hinv[static_cast<size_t>(k * cols)];
                        for (int64_t j = i2; j < cols; ++j) acc[static_cast<size_t>(j)] += e * hrow[j];
                    }
                    for (int64_t j = i2; j < cols; ++j) W[static_cast<size_t>(j)] -= acc[static_cast<size_t>(j)];
                }
            }
        }
        task_loss[t] = loss;
    });
    for (double l : task_loss) r.loss += l;
    finish(r, params, rows, cols, s);
    return r;
}

}  // namespace ktq::gptq
