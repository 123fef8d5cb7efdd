#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <algorithm>
#include <map>
#include <exception>
#include <numeric>
#include <thread>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cuda/cuda_support.h"
#include "cuda/gptq_cuda.h"
#include "quant/ct_rtn_math.h"
#include "runtime/error.h"

namespace ktq::cuda_gptq {

namespace {

namespace m = ct::math;

using ktq::cuda::Buffer;
using ktq::cuda::check;

constexpr int kRowsPerCta = 64;   // column-loop kernel: weight rows (threads) per block
constexpr int kTile = 64;         // lazy-update kernel: output tile
constexpr int kTileK = 16;        // lazy-update kernel: k-slice staged in shared memory

// h64 = damped, permuted, float64 copy of scale * h (quantization order).
__global__ void prepare_kernel(double *h64, const float *h, float scale, const int32_t *perm, const uint8_t *dead,
                               double damp, int64_t n) {
    const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= n * n) return;
    const int64_t i = idx / n, j = idx % n, a = perm[i], b = perm[j];
    double v = static_cast<double>(m::mul_rn(h[a * n + b], scale));
    if (i == j) {
        if (dead[a]) v = 1.0;
        v += damp;
    }
    h64[idx] = v;
}

// potri leaves one triangle: copy it over the other (column-major lower ->
// upper, i.e. the row-major lower triangle takes the upper's values).
__global__ void mirror_kernel(double *h64, int64_t n) {
    const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= n * n) return;
    const int64_t i = idx / n, j = idx % n;  // row-major (i, j)
    if (j < i) h64[idx] = h64[j * n + i];
}

// The row-major upper factor in float32 (the lower triangle zeroed), or the
// identity when the factorization failed.
__global__ void to_factor_kernel(float *out, const double *h64, int64_t n, const int *info) {
    const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= n * n) return;
    const int64_t i = idx / n, j = idx % n;
    const bool failed = info[0] != 0 || info[1] != 0 || info[2] != 0;
    out[idx] = failed ? (i == j ? 1.0f : 0.0f) : (j < i ? 0.0f : static_cast<float>(h64[idx]));
}

// Working copy in quantization order: w_perm[p][r][k] = w[p][r][perm[k]] (0 for dead columns).
__global__ void permute_kernel(float *w_perm, const float *w, const int32_t *perm, const uint8_t *dead,
                               const int32_t *factor_of, int64_t rows, int64_t cols, int64_t count) {
    const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= count * rows * cols) return;
    const int64_t p = idx / (rows * cols), k = idx % cols;
    const int64_t f = factor_of[p], c = perm[f * cols + k];
    w_perm[idx] = dead[f * cols + c] ? 0.0f : w[idx - k + c];
}

struct LoopArgs {
    float *w;                // [count, rows, cols] working copy, quantization order
    const float *hinv;       // [factors, cols, cols]
    const int32_t *perm;     // [factors, cols]
    const int32_t *factor_of;  // [count]
    const float *scale;      // [count, rows, groups]
    const float *zp;         // [count, rows, groups]
    int8_t *codes;           // [count, rows, cols], natural column order
    float *err;              // [count, rows, block]
    double *loss;            // [count, rows]
    int64_t rows, cols, glen, groups;
    int bits, block, dtype;
};

// One block of columns [i1, i2) for every row of every problem: a thread
// per row, the rows' block of weights and the block's factor tile in shared
// memory. Same operations, same order, same rounding as gptq::quantize.
__global__ void column_block_kernel(LoopArgs a, int64_t i1, int64_t i2) {
    extern __shared__ float smem[];
    const int B = static_cast<int>(i2 - i1);
    float *hs = smem;              // [B, B]: hinv[i1 + k][i1 + j]
    float *ws = smem + B * B;      // [kRowsPerCta, B + 1]
    const int64_t p = blockIdx.y, f = a.factor_of[p];
    const float *hinv = a.hinv + f * a.cols * a.cols;
    for (int t = threadIdx.x; t < B * B; t += blockDim.x)
        hs[t] = hinv[(i1 + t / B) * a.cols + i1 + t % B];
    const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kRowsPerCta;
    const int local = threadIdx.x, ld = B + 1;
    for (int t = threadIdx.x; t < kRowsPerCta * B; t += blockDim.x) {
        const int64_t r = r0 + t / B;
        ws[(t / B) * ld + t % B] = r < a.rows ? a.w[(p * a.rows + r) * a.cols + i1 + t % B] : 0.0f;
    }
    __syncthreads();
    const int64_t r = r0 + local;
    if (r >= a.rows) return;
    const float qmin = -static_cast<float>(1 << (a.bits - 1)), qmax = static_cast<float>((1 << (a.bits - 1)) - 1);
    const int32_t *perm = a.perm + f * a.cols;
    const int64_t prow = p * a.rows + r;
    float *wr = ws + local * ld;
    double loss = a.loss[prow];
    for (int k = 0; k < B; ++k) {
        const int64_t col = perm[i1 + k];
        const int64_t g = prow * a.groups + col / a.glen;
        const float scale = a.scale[g], zp = a.zp[g];
        const float x = wr[k];
        float v = m::div_rn(x, scale);
        if (zp != 0.0f) v = m::add_rn(v, zp);
        const float code = rintf(fminf(fmaxf(v, qmin), qmax));
        const float q = m::value_of(a.dtype, static_cast<int>(code), m::GroupParams{scale, zp});
        a.codes[prow * a.cols + col] = static_cast<int8_t>(code);
        const float *hrow = hs + k * B;
        const float e = m::div_rn(m::sub_rn(x, q), hrow[k]);
        a.err[prow * a.block + k] = e;
        const double de = e;
        loss = __dadd_rn(loss, __dmul_rn(de, de) / 2);
        for (int j = k; j < B; ++j) wr[j] = m::sub_rn(wr[j], m::mul_rn(e, hrow[j]));
    }
    a.loss[prow] = loss;
}

// w[p][r][j] -= sum_k err[p][r][k] * hinv[i1 + k][j] for j >= i2: the sum in
// k order first, then one subtraction, as the CPU path.
__global__ void lazy_update_kernel(LoopArgs a, int64_t i1, int64_t i2) {
    __shared__ float es[kTile][kTileK + 1];
    __shared__ float hs[kTileK][kTile];
    const int64_t p = blockIdx.z, f = a.factor_of[p];
    const float *hinv = a.hinv + f * a.cols * a.cols;
    const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kTile, c0 = i2 + static_cast<int64_t>(blockIdx.x) * kTile;
    const int tr = threadIdx.x / 16, tc = threadIdx.x % 16;  // 256 threads, 4 x 4 outputs each
    float acc[4][4] = {};
    const int B = static_cast<int>(i2 - i1);
    for (int k0 = 0; k0 < B; k0 += kTileK) {
        const int kn = min(kTileK, B - k0);
        for (int t = threadIdx.x; t < kTile * kTileK; t += blockDim.x) {
            const int rr = t / kTileK, kk = t % kTileK;
            const int64_t r = r0 + rr;
            es[rr][kk] = (r < a.rows && kk < kn) ? a.err[(p * a.rows + r) * a.block + k0 + kk] : 0.0f;
        }
        for (int t = threadIdx.x; t < kTileK * kTile; t += blockDim.x) {
            const int kk = t / kTile, cc = t % kTile;
            const int64_t c = c0 + cc;
            hs[kk][cc] = (c < a.cols && kk < kn) ? hinv[(i1 + k0 + kk) * a.cols + c] : 0.0f;
        }
        __syncthreads();
        for (int kk = 0; kk < kn; ++kk)
            for (int x = 0; x < 4; ++x)
                for (int y = 0; y < 4; ++y)
                    acc[x][y] = m::add_rn(acc[x][y], m::mul_rn(es[tr * 4 + x][kk], hs[kk][tc * 4 + y]));
        __syncthreads();
    }
    for (int x = 0; x < 4; ++x) {
        const int64_t r = r0 + tr * 4 + x;
        if (r >= a.rows) continue;
        for (int y = 0; y < 4; ++y) {
            const int64_t c = c0 + tc * 4 + y;
            if (c >= a.cols) continue;
            float &w = a.w[(p * a.rows + r) * a.cols + c];
            w = m::sub_rn(w, acc[x][y]);
        }
    }
}

unsigned blocks_for(int64_t n, int threads = 256) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace

// ---- DeviceHessian ----

struct DeviceHessian::Impl {
    int64_t cols;
    uint64_t rows = 0;
    cublasHandle_t blas = nullptr;
    Buffer<float> sum;
    Buffer<float> staging;  // host rows on their way to the device
    Impl(int64_t c, int device) : cols(c) {
        check(cudaSetDevice(device), "cudaSetDevice");
        check(cublasCreate(&blas), "cublasCreate");
        cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH);  // float32 stays float32 (no TF32)
        sum.resize(static_cast<size_t>(c * c), "Hessian sum");
        check(cudaMemset(sum.get(), 0, sum.size() * sizeof(float)), "cudaMemset");
    }
    ~Impl() { cublasDestroy(blas); }
};

DeviceHessian::DeviceHessian(int64_t cols, int device) : impl_(std::make_unique<Impl>(cols, device)) {}
DeviceHessian::~DeviceHessian() = default;
int64_t DeviceHessian::cols() const { return impl_->cols; }
uint64_t DeviceHessian::rows() const { return impl_->rows; }
const float *DeviceHessian::device_sum() const { return impl_->sum.get(); }

void DeviceHessian::add(const float *x, int64_t n) {
    Impl &d = *impl_;
    if (n <= 0) return;
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(n, (int64_t{64} << 20) / (d.cols * 4)));
    if (d.staging.size() < static_cast<size_t>(chunk * d.cols)) d.staging.resize(static_cast<size_t>(chunk * d.cols), "Hessian input");
    for (int64_t r = 0; r < n; r += chunk) {
        const int64_t k = std::min(chunk, n - r);
        check(cudaMemcpy(d.staging.get(), x + r * d.cols, static_cast<size_t>(k * d.cols) * 4, cudaMemcpyHostToDevice),
              "copy of Hessian input");
        add_device(d.staging.get(), k);
    }
}

void DeviceHessian::add_device(const float *x, int64_t n) {
    Impl &d = *impl_;
    if (n <= 0) return;
    const float one = 1.0f;
    // Row-major x [n, cols] is column-major [cols, n]: sum += X X^T.
    check(cublasSgemm(d.blas, CUBLAS_OP_N, CUBLAS_OP_T, static_cast<int>(d.cols), static_cast<int>(d.cols),
                      static_cast<int>(n), &one, x, static_cast<int>(d.cols), x, static_cast<int>(d.cols), &one,
                      d.sum.get(), static_cast<int>(d.cols)),
          "Hessian product");
    d.rows += static_cast<uint64_t>(n);
}

void DeviceHessian::add_bf16_device(const void *x, int64_t n) {
    Impl &d = *impl_;
    if (n <= 0) return;
    const float one = 1.0f;
    check(cublasGemmEx(d.blas, CUBLAS_OP_N, CUBLAS_OP_T, static_cast<int>(d.cols), static_cast<int>(d.cols),
                       static_cast<int>(n), &one, x, CUDA_R_16BF, static_cast<int>(d.cols), x, CUDA_R_16BF,
                       static_cast<int>(d.cols), &one, d.sum.get(), CUDA_R_32F, static_cast<int>(d.cols),
                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "Hessian product (BF16)");
    d.rows += static_cast<uint64_t>(n);
}

std::vector<float> DeviceHessian::normalized() const {
    const Impl &d = *impl_;
    std::vector<float> h(static_cast<size_t>(d.cols * d.cols), 0.0f);
    if (d.rows == 0) return h;
    check(cudaMemcpy(h.data(), d.sum.get(), h.size() * 4, cudaMemcpyDeviceToHost), "copy of Hessian");
    const float f = 2.0f / static_cast<float>(d.rows);
    for (float &v : h) v *= f;
    return h;
}

// ---- DeviceRows ----

struct DeviceRows::Impl {
    Buffer<float> buf;
    const float *host = nullptr;
    int64_t rows = 0, cols = 0;
};

DeviceRows::DeviceRows(int device) : impl_(std::make_unique<Impl>()) { check(cudaSetDevice(device), "cudaSetDevice"); }
DeviceRows::~DeviceRows() = default;
const float *DeviceRows::data() const { return impl_->buf.get(); }
int64_t DeviceRows::rows() const { return impl_->rows; }
void DeviceRows::forget() { impl_->host = nullptr; }

void DeviceRows::upload(const float *x, int64_t n, int64_t cols) {
    Impl &d = *impl_;
    if (x == d.host && n == d.rows && cols == d.cols) return;
    if (d.buf.size() < static_cast<size_t>(n * cols)) d.buf.resize(static_cast<size_t>(n * cols), "calibration rows");
    check(cudaMemcpy(d.buf.get(), x, static_cast<size_t>(n * cols) * 4, cudaMemcpyHostToDevice), "copy of calibration rows");
    d.host = x;
    d.rows = n;
    d.cols = cols;
}

// ---- ExpertCalibrator ----

namespace {

// a[t][j] = silu(gu[t][j]) * gu[t][inter + j], float32 (the CPU forward's formula).
__global__ void silu_mul_kernel(float *a, const float *gu, int64_t n, int64_t inter) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n * inter) return;
    const int64_t t = i / inter, j = i % inter;
    const float g = gu[t * 2 * inter + j], u = gu[t * 2 * inter + inter + j];
    a[i] = m::mul_rn(m::div_rn(g, m::add_rn(1.0f, expf(-g))), u);
}

}  // namespace

struct ExpertCalibrator::Impl {
    cublasHandle_t blas = nullptr;
    std::map<const void *, std::unique_ptr<Buffer<float>>> weights;  // key -> [2 inter, hidden]: gate rows, up rows
    size_t max_cached = 0, cached = 0;
    Buffer<float> scratch;  // an expert's weights when the cache is full
    Buffer<float> gu, act;
    Impl(size_t max_cached_bytes, int device) : max_cached(max_cached_bytes) {
        check(cudaSetDevice(device), "cudaSetDevice");
        check(cublasCreate(&blas), "cublasCreate");
        cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH);
    }
    ~Impl() { cublasDestroy(blas); }
};

ExpertCalibrator::ExpertCalibrator(size_t max_cached_bytes, int device)
    : impl_(std::make_unique<Impl>(max_cached_bytes, device)) {}
ExpertCalibrator::~ExpertCalibrator() = default;

void ExpertCalibrator::add_down_hessian(DeviceHessian &down, const void *key, const float *gate, const float *up,
                                        int64_t inter, int64_t hidden, const DeviceRows &x) {
    Impl &d = *impl_;
    const int64_t n = x.rows();
    if (n <= 0) return;
    if (down.cols() != inter) fail(KTQ_ERR_INTERNAL, "ExpertCalibrator: the down Hessian is not [inter, inter]");
    const size_t bytes = static_cast<size_t>(2 * inter * hidden) * 4;
    float *wd = nullptr;
    auto it = d.weights.find(key);
    if (it != d.weights.end()) {
        wd = it->second->get();
    } else {
        if (d.cached + bytes <= d.max_cached) {
            auto &w = d.weights[key];
            w = std::make_unique<Buffer<float>>(static_cast<size_t>(2 * inter * hidden), "expert weights");
            d.cached += bytes;
            wd = w->get();
        } else {
            if (d.scratch.size() < static_cast<size_t>(2 * inter * hidden))
                d.scratch.resize(static_cast<size_t>(2 * inter * hidden), "expert weights");
            wd = d.scratch.get();
        }
        check(cudaMemcpy(wd, gate, static_cast<size_t>(inter * hidden) * 4, cudaMemcpyHostToDevice), "copy of gate");
        check(cudaMemcpy(wd + inter * hidden, up, static_cast<size_t>(inter * hidden) * 4, cudaMemcpyHostToDevice),
              "copy of up");
    }
    if (d.gu.size() < static_cast<size_t>(n * 2 * inter)) d.gu.resize(static_cast<size_t>(n * 2 * inter), "expert gate/up");
    if (d.act.size() < static_cast<size_t>(n * inter)) d.act.resize(static_cast<size_t>(n * inter), "expert activations");
    const float one = 1.0f, zero = 0.0f;
    // [n, 2 inter] = x [n, hidden] . W^T; column-major: (W as [hidden, 2 inter])^T . x [hidden, n].
    check(cublasSgemm(d.blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(2 * inter), static_cast<int>(n),
                      static_cast<int>(hidden), &one, wd, static_cast<int>(hidden), x.data(),
                      static_cast<int>(hidden), &zero, d.gu.get(), static_cast<int>(2 * inter)),
          "expert gate/up product");
    silu_mul_kernel<<<blocks_for(n * inter), 256>>>(d.act.get(), d.gu.get(), n, inter);
    check(cudaGetLastError(), "silu kernel");
    down.add_device(d.act.get(), n);
}

// ---- batched GPTQ ----

namespace {

// Observer on the original weights, one thread per (problem, row, group):
// the same ct::math::group_params as gptq::weight_params on the host.
__global__ void params_kernel(const float *w, float *scale, float *zp, int64_t rows, int64_t cols, int64_t glen,
                              int64_t groups, int64_t count, int dtype, int bits, bool symmetric, bool mse) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= count * rows * groups) return;
    const int64_t g = i % groups, pr = i / groups;  // pr = problem * rows + row
    const float *x = w + pr * cols + g * glen;
    float lo = x[0], hi = x[0];
    for (int64_t j = 1; j < glen; ++j) lo = fminf(lo, x[j]), hi = fmaxf(hi, x[j]);
    const m::GroupParams p = mse ? m::mse_group_params(dtype, bits, symmetric, false, x, static_cast<int>(glen), lo, hi)
                                 : m::group_params(dtype, bits, symmetric, lo, hi);
    scale[i] = p.scale;
    zp[i] = p.zp;
}

// What each code stands for, as gptq::finish computes it.
__global__ void dequant_kernel(float *out, const int8_t *codes, const float *scale, const float *zp, int64_t rows,
                               int64_t cols, int64_t glen, int64_t groups, int64_t count, int dtype) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= count * rows * cols) return;
    const int64_t pr = i / cols, c = i % cols, g = pr * groups + c / glen;
    out[i] = m::value_of(dtype, codes[i], m::GroupParams{scale[g], zp[g]});
}

__global__ void widen_kernel(float *out, const uint16_t *in, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) out[i] = m::from_bf16(in[i]);
}

int dtype_code(ktq_dtype d) { return d == KTQ_DTYPE_BF16 ? m::kBF16 : d == KTQ_DTYPE_F16 ? m::kF16 : m::kF32; }

// KTQ_GPTQ_TIMING=1 prints where a batch's time goes (stderr).
class PhaseClock {
public:
    PhaseClock() : on_(std::getenv("KTQ_GPTQ_TIMING") != nullptr), t_(std::chrono::steady_clock::now()) {}
    void lap(const char *what) {
        if (!on_) return;
        cudaDeviceSynchronize();
        const auto now = std::chrono::steady_clock::now();
        std::fprintf(stderr, "ktq gptq cuda: %-28s %8.3f s\n", what, std::chrono::duration<double>(now - t_).count());
        t_ = now;
    }

private:
    bool on_;
    std::chrono::steady_clock::time_point t_;
};

// A stream with its own solver handle and float64 workspace: the factors of
// a batch (an MoE layer's experts) are independent and overlap on the GPU.
struct FactorLane {
    cudaStream_t stream = nullptr;
    cusolverDnHandle_t solver = nullptr;
    Buffer<double> h64, work;
    Buffer<int> info;
    FactorLane(int64_t n) {
        check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
        check(cusolverDnCreate(&solver), "cusolverDnCreate");
        check(cusolverDnSetStream(solver, stream), "cusolverDnSetStream");
        h64.resize(static_cast<size_t>(n * n), "GPTQ float64 workspace");
        int l1 = 0, l2 = 0;
        check(cusolverDnDpotrf_bufferSize(solver, CUBLAS_FILL_MODE_LOWER, static_cast<int>(n), h64.get(),
                                          static_cast<int>(n), &l1),
              "potrf workspace size");
        check(cusolverDnDpotri_bufferSize(solver, CUBLAS_FILL_MODE_LOWER, static_cast<int>(n), h64.get(),
                                          static_cast<int>(n), &l2),
              "potri workspace size");
        work.resize(static_cast<size_t>(std::max(1, std::max(l1, l2))), "cuSOLVER workspace");
        info.resize(3, "cuSOLVER info");
    }
    ~FactorLane() {
        if (solver) cusolverDnDestroy(solver);
        if (stream) cudaStreamDestroy(stream);
    }
};

}  // namespace

namespace {

// Factorizes factors [f0, f1) of the batch into hinv (f - f0 slots) on the
// current device; perm_d / dead_d hold those factors' column orders and dead
// columns. Returns the RTN-fallback flag of each.
std::vector<uint8_t> factorize(const Batch &batch, const std::vector<gptq::FactorPlan> &plans, int64_t f0, int64_t f1,
                               float *hinv, const int32_t *perm_d, const uint8_t *dead_d) {
    int current = 0;
    check(cudaGetDevice(&current), "cudaGetDevice");
    const int64_t cols = batch.cols, nf = f1 - f0;
    const int nlanes = static_cast<int>(std::min<int64_t>(nf, 4));
    std::vector<std::unique_ptr<FactorLane>> lanes;
    std::vector<std::unique_ptr<Buffer<float>>> staging;  // host Hessians go up through one buffer per lane
    for (int i = 0; i < nlanes; ++i) {
        lanes.push_back(std::make_unique<FactorLane>(cols));
        staging.push_back(std::make_unique<Buffer<float>>());
    }
    Buffer<int> infos(static_cast<size_t>(3 * nf), "cuSOLVER info");
    check(cudaMemset(infos.get(), 0, infos.size() * sizeof(int)), "cudaMemset");
    // The lanes' streams do not wait for the legacy stream's copies before.
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    const int n = static_cast<int>(cols);
    const unsigned nb = blocks_for(cols * cols);
    for (int64_t k = 0; k < nf; ++k) {
        const int64_t f = f0 + k;
        FactorLane &L = *lanes[static_cast<size_t>(k % nlanes)];
        const HessianRef &ref = batch.hessians[static_cast<size_t>(f)];
        const float *hd = ref.device;
        float scale = ref.scale;
        bool elsewhere = false;  // a device sum on another GPU of a multi-device batch
        if (!ref.host) {
            cudaPointerAttributes at{};
            check(cudaPointerGetAttributes(&at, ref.device), "cudaPointerGetAttributes");
            elsewhere = at.type == cudaMemoryTypeDevice && at.device != current;
        }
        if (ref.host || elsewhere) {
            Buffer<float> &st = *staging[static_cast<size_t>(k % nlanes)];
            if (st.size() == 0) st.resize(static_cast<size_t>(cols * cols), "GPTQ Hessian");
            // The lane's previous factor must be done with the staging
            // buffer; the copy is ordered on the lane (a plain cudaMemcpy
            // from pageable memory may still be in flight when it returns).
            check(cudaStreamSynchronize(L.stream), "cudaStreamSynchronize");
            check(cudaMemcpyAsync(st.get(), ref.host ? ref.host : ref.device, static_cast<size_t>(cols * cols) * 4,
                                  cudaMemcpyDefault, L.stream),
                  "copy of Hessian");
            hd = st.get();
            if (ref.host) scale = 1.0f;
        }
        int *info = infos.get() + 3 * k;
        prepare_kernel<<<nb, 256, 0, L.stream>>>(L.h64.get(), hd, scale, perm_d + k * cols, dead_d + k * cols,
                                                 plans[static_cast<size_t>(f)].damp, cols);
        check(cudaGetLastError(), "prepare kernel");
        // A failed first factorization leaves garbage for the next steps;
        // to_factor_kernel then writes the identity (RTN fallback).
        check(cusolverDnDpotrf(L.solver, CUBLAS_FILL_MODE_LOWER, n, L.h64.get(), n, L.work.get(),
                               static_cast<int>(L.work.size()), info),
              "potrf");
        check(cusolverDnDpotri(L.solver, CUBLAS_FILL_MODE_LOWER, n, L.h64.get(), n, L.work.get(),
                               static_cast<int>(L.work.size()), info + 1),
              "potri");
        mirror_kernel<<<nb, 256, 0, L.stream>>>(L.h64.get(), cols);
        check(cudaGetLastError(), "mirror kernel");
        check(cusolverDnDpotrf(L.solver, CUBLAS_FILL_MODE_LOWER, n, L.h64.get(), n, L.work.get(),
                               static_cast<int>(L.work.size()), info + 2),
              "potrf of the inverse");
        to_factor_kernel<<<nb, 256, 0, L.stream>>>(hinv + k * cols * cols, L.h64.get(), cols, info);
        check(cudaGetLastError(), "factor kernel");
    }
    check(cudaDeviceSynchronize(), "factorizations");
    std::vector<int> info_h(infos.size());
    check(cudaMemcpy(info_h.data(), infos.get(), info_h.size() * sizeof(int), cudaMemcpyDeviceToHost),
          "copy of cuSOLVER info");
    std::vector<uint8_t> fallback(static_cast<size_t>(nf));
    for (int64_t k = 0; k < nf; ++k)
        fallback[static_cast<size_t>(k)] = info_h[static_cast<size_t>(3 * k)] != 0 ||
                                           info_h[static_cast<size_t>(3 * k + 1)] != 0 ||
                                           info_h[static_cast<size_t>(3 * k + 2)] != 0;
    return fallback;
}

}  // namespace

std::vector<gptq::Result> quantize(const Batch &batch, const gptq::Options &opts, const std::vector<int> &devices) {
    if (devices.empty()) fail(KTQ_ERR_INVALID_ARGUMENT, "GPTQ batch: no CUDA device given");
    const int device = devices.front();
    const bool bf16_in = !batch.weights_bf16.empty();
    if (bf16_in && !batch.weights.empty())
        fail(KTQ_ERR_INVALID_ARGUMENT, "GPTQ batch: give the weights as floats or as BF16, not both");
    if (bf16_in && opts.scheme.dtype != KTQ_DTYPE_BF16)
        fail(KTQ_ERR_INVALID_ARGUMENT, "GPTQ batch: BF16 weights need a BF16 scheme");
    const int64_t rows = batch.rows, cols = batch.cols;
    const int64_t count = static_cast<int64_t>(bf16_in ? batch.weights_bf16.size() : batch.weights.size());
    const int64_t nf = static_cast<int64_t>(batch.hessians.size());
    gptq::check_problem(rows, cols, opts);
    if (static_cast<int64_t>(batch.factor_of.size()) != count)
        fail(KTQ_ERR_INVALID_ARGUMENT, "GPTQ batch: one factor index per problem is needed");
    for (int f : batch.factor_of)
        if (f < 0 || f >= nf) fail(KTQ_ERR_INVALID_ARGUMENT, "GPTQ batch: factor index out of range");
    if (count == 0) return {};
    const ct::Scheme &s = opts.scheme;
    const int64_t glen = s.group_size > 0 ? s.group_size : cols, groups = cols / glen;
    const int64_t B = std::min<int64_t>(opts.block_size, cols);
    const int dt = dtype_code(s.dtype);
    check(cudaSetDevice(device), "cudaSetDevice");
    PhaseClock clock;

    // The decisions of every factor on the host (gptq::plan_factor, from the diagonal).
    std::vector<gptq::FactorPlan> plans(static_cast<size_t>(nf));
    std::vector<int32_t> perm32(static_cast<size_t>(nf * cols));
    std::vector<uint8_t> dead(static_cast<size_t>(nf * cols));
    for (int64_t f = 0; f < nf; ++f) {
        const HessianRef &ref = batch.hessians[static_cast<size_t>(f)];
        std::vector<double> diag(static_cast<size_t>(cols));
        if (ref.host) {
            for (int64_t c = 0; c < cols; ++c) diag[static_cast<size_t>(c)] = ref.host[c * cols + c];
        } else {
            if (!ref.device) fail(KTQ_ERR_INVALID_ARGUMENT, "GPTQ batch: a Hessian has neither host nor device data");
            std::vector<float> d(static_cast<size_t>(cols));
            check(cudaMemcpy2D(d.data(), 4, ref.device, static_cast<size_t>(cols + 1) * 4, 4, static_cast<size_t>(cols),
                               cudaMemcpyDeviceToHost),
                  "copy of Hessian diagonal");
            for (int64_t c = 0; c < cols; ++c)
                diag[static_cast<size_t>(c)] = static_cast<double>(d[static_cast<size_t>(c)] * ref.scale);
        }
        plans[static_cast<size_t>(f)] = gptq::plan_factor(diag, opts);
        for (int64_t c = 0; c < cols; ++c) {
            perm32[static_cast<size_t>(f * cols + c)] = static_cast<int32_t>(plans[static_cast<size_t>(f)].perm[static_cast<size_t>(c)]);
            dead[static_cast<size_t>(f * cols + c)] = plans[static_cast<size_t>(f)].dead[static_cast<size_t>(c)];
        }
    }
    clock.lap("factor plans");

    // Problems in factor order; chunks of whole factors (and their problems)
    // that fit the budget: half of the free device memory, at most max_device_bytes.
    std::vector<int64_t> order(static_cast<size_t>(count));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
        return batch.factor_of[static_cast<size_t>(x)] < batch.factor_of[static_cast<size_t>(y)];
    });
    size_t budget = size_t(-1);
    for (int d : devices) {
        size_t free_b = 0, total_b = 0;
        check(cudaSetDevice(d), "cudaSetDevice");
        check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
        budget = std::min(budget, free_b / 2);
    }
    check(cudaSetDevice(device), "cudaSetDevice");
    if (batch.max_device_bytes > 0) budget = std::min<size_t>(budget, batch.max_device_bytes);
    const size_t per_problem = static_cast<size_t>(rows * cols) * (4 + 4 + 1 + 2) + static_cast<size_t>(rows * groups) * 8 +
                               static_cast<size_t>(rows * B) * 4 + static_cast<size_t>(rows) * 8;
    const size_t per_factor = static_cast<size_t>(cols * cols) * 4;
    const size_t fixed = 4 * static_cast<size_t>(cols * cols) * (8 + 4) + (size_t{64} << 20);  // lanes' workspaces
    if (fixed + per_factor + per_problem > budget)
        fail(KTQ_ERR_NO_MEMORY, "GPTQ on the GPU: one " + std::to_string(rows) + " x " + std::to_string(cols) +
                                    " problem needs about " + std::to_string((fixed + per_factor + per_problem) >> 20) +
                                    " MiB of device memory, more than the " + std::to_string(budget >> 20) +
                                    " MiB allowed (raise max_device_memory, free the GPU, or run on the CPU)");
    std::vector<gptq::Result> results(static_cast<size_t>(count));
    const size_t smem = static_cast<size_t>(B * B + kRowsPerCta * (B + 1)) * sizeof(float);
    check(cudaFuncSetAttribute(column_block_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
          "shared memory size of the column kernel");
    struct Chunk {
        size_t i0, i1;
        int64_t f0, f1;
    };
    std::vector<Chunk> chunks;
    for (size_t i0 = 0; i0 < order.size();) {
        // Grow the chunk problem by problem; a new factor costs its slot.
        const int64_t f0 = batch.factor_of[static_cast<size_t>(order[i0])];
        int64_t f1 = f0 + 1;
        size_t i1 = i0 + 1, bytes = fixed + per_factor + per_problem;
        while (i1 < order.size()) {
            const int64_t f = batch.factor_of[static_cast<size_t>(order[i1])];
            const size_t more = per_problem + (f >= f1 ? static_cast<size_t>(f + 1 - f1) * per_factor : 0);
            if (bytes + more > budget) break;
            bytes += more;
            f1 = std::max(f1, f + 1);
            ++i1;
        }
        chunks.push_back({i0, i1, f0, f1});
        i0 = i1;
    }
    // Chunks go round-robin to the devices, one host thread each; every
    // problem's result depends only on its own inputs, not on its chunk.
    auto run_chunk = [&](const Chunk &ch) {
        const size_t i0 = ch.i0, i1 = ch.i1;
        const int64_t f0 = ch.f0, f1 = ch.f1;
            const int64_t n = static_cast<int64_t>(i1 - i0);
            Buffer<float> hinv(static_cast<size_t>((f1 - f0) * cols * cols), "GPTQ inverse factors");
            Buffer<int32_t> perm_d(static_cast<size_t>((f1 - f0) * cols), "GPTQ column order");
            Buffer<uint8_t> dead_d(static_cast<size_t>((f1 - f0) * cols), "GPTQ dead columns");
            check(cudaMemcpy(perm_d.get(), perm32.data() + f0 * cols, perm_d.size() * 4, cudaMemcpyHostToDevice),
                  "copy of column order");
            check(cudaMemcpy(dead_d.get(), dead.data() + f0 * cols, dead_d.size(), cudaMemcpyHostToDevice),
                  "copy of dead columns");
            const std::vector<uint8_t> fallback = factorize(batch, plans, f0, f1, hinv.get(), perm_d.get(), dead_d.get());
            clock.lap("factorizations");
            Buffer<float> w_in(static_cast<size_t>(n * rows * cols), "GPTQ weights");  // later: the dequantized weights
            Buffer<float> w_d(static_cast<size_t>(n * rows * cols), "GPTQ working weights");
            Buffer<int8_t> codes_d(static_cast<size_t>(n * rows * cols), "GPTQ codes");
            Buffer<float> scale_d(static_cast<size_t>(n * rows * groups), "GPTQ scales");
            Buffer<float> zp_d(static_cast<size_t>(n * rows * groups), "GPTQ zero points");
            Buffer<float> err_d(static_cast<size_t>(n * rows * B), "GPTQ errors");
            Buffer<double> loss_d(static_cast<size_t>(n * rows), "GPTQ losses");
            Buffer<int32_t> fof_d(static_cast<size_t>(n), "GPTQ factor indices");
            Buffer<uint16_t> w_bf16;
            if (bf16_in) w_bf16.resize(static_cast<size_t>(n * rows * cols), "GPTQ BF16 weights");
            std::vector<int32_t> fof(static_cast<size_t>(n));  // factor slot within the chunk
            for (int64_t p = 0; p < n; ++p) {
                const size_t src = static_cast<size_t>(order[i0 + static_cast<size_t>(p)]);
                fof[static_cast<size_t>(p)] = static_cast<int32_t>(batch.factor_of[src] - f0);
                if (bf16_in)
                    check(cudaMemcpy(w_bf16.get() + p * rows * cols, batch.weights_bf16[src], static_cast<size_t>(rows * cols) * 2,
                                     cudaMemcpyHostToDevice),
                          "copy of weights");
                else
                    check(cudaMemcpy(w_in.get() + p * rows * cols, batch.weights[src], static_cast<size_t>(rows * cols) * 4,
                                     cudaMemcpyHostToDevice),
                          "copy of weights");
            }
            if (bf16_in) {
                widen_kernel<<<blocks_for(n * rows * cols), 256>>>(w_in.get(), w_bf16.get(), n * rows * cols);
                check(cudaGetLastError(), "BF16 kernel");
            }
            check(cudaMemcpy(fof_d.get(), fof.data(), fof.size() * 4, cudaMemcpyHostToDevice), "copy of factor indices");
            check(cudaMemset(codes_d.get(), 0, static_cast<size_t>(n * rows * cols)), "cudaMemset");
            check(cudaMemset(loss_d.get(), 0, static_cast<size_t>(n * rows) * 8), "cudaMemset");
            clock.lap("weights to the device");
            params_kernel<<<blocks_for(n * rows * groups), 256>>>(w_in.get(), scale_d.get(), zp_d.get(), rows, cols, glen,
                                                                 groups, n, dt, s.bits, s.symmetric,
                                                                 s.observer == ct::Observer::kMse);
            check(cudaGetLastError(), "observer kernel");
            permute_kernel<<<blocks_for(n * rows * cols), 256>>>(w_d.get(), w_in.get(), perm_d.get(),
                                                                 dead_d.get(), fof_d.get(), rows, cols, n);
            check(cudaGetLastError(), "permute kernel");
            LoopArgs a{w_d.get(), hinv.get(), perm_d.get(), fof_d.get(), scale_d.get(), zp_d.get(), codes_d.get(),
                       err_d.get(), loss_d.get(), rows, cols, glen, groups, s.bits, static_cast<int>(B), dt};
            for (int64_t c1 = 0; c1 < cols; c1 += B) {
                const int64_t c2 = std::min(cols, c1 + B);
                const size_t sm = static_cast<size_t>((c2 - c1) * (c2 - c1) + kRowsPerCta * (c2 - c1 + 1)) * sizeof(float);
                column_block_kernel<<<dim3(static_cast<unsigned>((rows + kRowsPerCta - 1) / kRowsPerCta), static_cast<unsigned>(n)),
                                      kRowsPerCta, sm>>>(a, c1, c2);
                check(cudaGetLastError(), "column kernel");
                if (c2 < cols) {
                    lazy_update_kernel<<<dim3(static_cast<unsigned>((cols - c2 + kTile - 1) / kTile),
                                              static_cast<unsigned>((rows + kTile - 1) / kTile), static_cast<unsigned>(n)),
                                         256>>>(a, c1, c2);
                    check(cudaGetLastError(), "update kernel");
                }
            }
            if (batch.dequantized) {
                dequant_kernel<<<blocks_for(n * rows * cols), 256>>>(w_in.get(), codes_d.get(), scale_d.get(), zp_d.get(),
                                                                     rows, cols, glen, groups, n, dt);
                check(cudaGetLastError(), "dequantization kernel");
            }
            clock.lap("GPTQ kernels");
            std::vector<double> loss(static_cast<size_t>(n * rows));
            std::vector<float> sc(static_cast<size_t>(n * rows * groups)), zp(sc.size());
            check(cudaMemcpy(loss.data(), loss_d.get(), loss.size() * 8, cudaMemcpyDeviceToHost), "copy of losses");
            check(cudaMemcpy(sc.data(), scale_d.get(), sc.size() * 4, cudaMemcpyDeviceToHost), "copy of scales");
            check(cudaMemcpy(zp.data(), zp_d.get(), zp.size() * 4, cudaMemcpyDeviceToHost), "copy of zero points");
            const size_t pg = static_cast<size_t>(rows * groups);
            for (int64_t p = 0; p < n; ++p) {
                gptq::Result &r = results[static_cast<size_t>(order[i0 + static_cast<size_t>(p)])];
                r.codes.resize(static_cast<size_t>(rows * cols));
                check(cudaMemcpy(r.codes.data(), codes_d.get() + p * rows * cols, r.codes.size(), cudaMemcpyDeviceToHost),
                      "copy of codes");
                if (batch.dequantized) {
                    r.dequantized.resize(static_cast<size_t>(rows * cols));
                    check(cudaMemcpy(r.dequantized.data(), w_in.get() + p * rows * cols, r.dequantized.size() * 4,
                                     cudaMemcpyDeviceToHost),
                          "copy of dequantized weights");
                }
                // Dead columns are zeros in the working copy: their codes are the codes of 0, as on the CPU.
                r.rtn_fallback = fallback[static_cast<size_t>(fof[static_cast<size_t>(p)])] != 0;
                for (int64_t i = 0; i < rows; ++i) r.loss += loss[static_cast<size_t>(p * rows + i)];
                r.scales.assign(sc.begin() + static_cast<std::ptrdiff_t>(p * pg), sc.begin() + static_cast<std::ptrdiff_t>((p + 1) * pg));
                if (!s.symmetric) {
                    r.zero_points.resize(pg);
                    for (size_t i = 0; i < pg; ++i) r.zero_points[i] = static_cast<int8_t>(zp[p * pg + i]);
                }
            }
            clock.lap("results to the host");
    };
    if (devices.size() == 1) {
        for (const Chunk &ch : chunks) run_chunk(ch);
    } else {
        std::vector<std::exception_ptr> errors(devices.size());
        std::vector<std::thread> threads;
        for (size_t d = 0; d < devices.size(); ++d)
            threads.emplace_back([&, d] {
                try {
                    check(cudaSetDevice(devices[d]), "cudaSetDevice");
                    for (size_t c = d; c < chunks.size(); c += devices.size()) run_chunk(chunks[c]);
                } catch (...) {
                    errors[d] = std::current_exception();
                }
            });
        for (std::thread &t : threads) t.join();
        for (const std::exception_ptr &e : errors)
            if (e) std::rethrow_exception(e);
    }
    return results;
}

}  // namespace ktq::cuda_gptq
