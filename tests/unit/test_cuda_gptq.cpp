// The CUDA GPTQ path against the CPU path (quant/gptq.cpp), which
// tests/python/test_gptq.py checks against an independent numpy GPTQ: the
// same scales, the same codes for >= 99.9 % of the weights with the rest one
// step apart (the two float64 factorizations - LAPACK and cuSOLVER - may
// round an inverse-factor entry differently in its last float32 bit, and a
// weight sitting on a rounding boundary then goes the other way), the same
// fallbacks. Runs on a machine with a CUDA device; skips elsewhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "cuda/cuda_devices.h"
#include "cuda/gptq_cuda.h"
#include "ktq/ktq.h"
#include "quant/gptq.h"
#include "runtime/thread_pool.h"

namespace {

using ktq::gptq::Options;
using ktq::gptq::Result;

#define KTQ_REQUIRE_CUDA()                                \
    do {                                                  \
        if (ktq::cuda_device_count(nullptr) == 0)         \
            GTEST_SKIP() << "no CUDA device on this machine (GPU tests run on the GPU host)"; \
    } while (0)

// Inputs with correlated features (a shared low-rank part), so that GPTQ's
// error propagation matters; some columns never active when `dead` is set.
std::vector<float> inputs(std::mt19937 &rng, int64_t n, int64_t cols, int dead) {
    std::normal_distribution<float> nd;
    const int64_t rank = 8;
    std::vector<float> mix(static_cast<size_t>(rank * cols)), x(static_cast<size_t>(n * cols));
    for (float &v : mix) v = nd(rng);
    for (int64_t r = 0; r < n; ++r) {
        float z[rank];
        for (float &v : z) v = nd(rng);
        for (int64_t c = 0; c < cols; ++c) {
            float v = 0.3f * nd(rng) * std::exp(0.02f * static_cast<float>(c % 50));
            for (int64_t k = 0; k < rank; ++k) v += z[k] * mix[static_cast<size_t>(k * cols + c)] * 0.5f;
            x[static_cast<size_t>(r * cols + c)] = c < dead ? 0.0f : v;
        }
    }
    return x;
}

std::vector<float> weights(std::mt19937 &rng, int64_t rows, int64_t cols) {
    std::normal_distribution<float> nd(0.0f, 0.02f);
    std::vector<float> w(static_cast<size_t>(rows * cols));
    for (float &v : w) v = ktq::ct::math::round_to(ktq::ct::math::kBF16, nd(rng));
    return w;
}

void expect_agree(const Result &cpu, const Result &gpu, const char *what) {
    ASSERT_EQ(cpu.codes.size(), gpu.codes.size()) << what;
    ASSERT_EQ(cpu.scales, gpu.scales) << what;
    ASSERT_EQ(cpu.zero_points, gpu.zero_points) << what;
    EXPECT_EQ(cpu.rtn_fallback, gpu.rtn_fallback) << what;
    size_t differ = 0;
    for (size_t i = 0; i < cpu.codes.size(); ++i)
        if (cpu.codes[i] != gpu.codes[i]) {
            ++differ;
            EXPECT_LE(std::abs(cpu.codes[i] - gpu.codes[i]), 1) << what << " code " << i;
        }
    EXPECT_LE(static_cast<double>(differ), 0.001 * static_cast<double>(cpu.codes.size()))
        << what << ": " << differ << " of " << cpu.codes.size() << " codes differ";
    EXPECT_NEAR(gpu.loss, cpu.loss, 1e-3 * std::abs(cpu.loss) + 1e-9) << what;
    std::printf("%s: %zu of %zu codes differ, loss cpu %.6g gpu %.6g\n", what, differ, cpu.codes.size(), cpu.loss,
                gpu.loss);
}

struct Case {
    const char *name;
    int bits, group;
    bool symmetric;
    ktq::gptq::ActOrder order;
    int block;
    ktq::ct::Observer observer = ktq::ct::Observer::kMinMax;
};

}  // namespace

TEST(CudaGptq, BatchAgreesWithCpu) {
    KTQ_REQUIRE_CUDA();
    ktq::ThreadPool pool(4);
    const Case cases[] = {
        {"w4 g128 sym static", 4, 128, true, ktq::gptq::ActOrder::Static, 128},
        {"w4 g64 asym none", 4, 64, false, ktq::gptq::ActOrder::None, 128},
        {"w8 channel sym static block 96", 8, -1, true, ktq::gptq::ActOrder::Static, 96},
        {"w4 g128 asym static mse observer", 4, 128, false, ktq::gptq::ActOrder::Static, 128, ktq::ct::Observer::kMse},
    };
    for (const Case &c : cases) {
        std::mt19937 rng(7);
        const int64_t rows = 192, cols = 384, n = 1024;
        // Three Hessians (one with dead columns), five problems: siblings share.
        std::vector<std::vector<float>> hs;
        for (int f = 0; f < 3; ++f) {
            ktq::gptq::Hessian h(cols);
            const std::vector<float> x = inputs(rng, n, cols, f == 2 ? 5 : 0);
            h.add(x.data(), n, pool);
            hs.push_back(h.normalized());
        }
        std::vector<std::vector<float>> ws;
        const int factor_of[] = {0, 0, 1, 2, 1};
        for (int p = 0; p < 5; ++p) ws.push_back(weights(rng, rows, cols));
        Options o;
        o.scheme.bits = c.bits;
        o.scheme.group_size = c.group;
        o.scheme.symmetric = c.symmetric;
        o.scheme.observer = c.observer;
        o.act_order = c.order;
        o.block_size = c.block;
        ktq::cuda_gptq::Batch batch;
        batch.rows = rows;
        batch.cols = cols;
        for (const auto &h : hs) batch.hessians.push_back({h.data(), nullptr, 1.0f});
        for (int p = 0; p < 5; ++p) {
            batch.weights.push_back(ws[static_cast<size_t>(p)].data());
            batch.factor_of.push_back(factor_of[p]);
        }
        const std::vector<Result> gpu = ktq::cuda_gptq::quantize(batch, o);
        ASSERT_EQ(gpu.size(), 5u);
        // The same weights as raw BF16, without the dequantized values: same codes.
        ktq::cuda_gptq::Batch raw = batch;
        raw.weights.clear();
        raw.dequantized = false;
        std::vector<std::vector<uint16_t>> bits(5);
        for (int p = 0; p < 5; ++p) {
            for (float v : ws[static_cast<size_t>(p)]) bits[static_cast<size_t>(p)].push_back(ktq::ct::math::bf16_bits(v));
            raw.weights_bf16.push_back(bits[static_cast<size_t>(p)].data());
        }
        const std::vector<Result> gpu_raw = ktq::cuda_gptq::quantize(raw, o);
        // A tight device-memory budget: solved in chunks of about two problems, same results.
        ktq::cuda_gptq::Batch tight = batch;
        tight.max_device_bytes = 4 * static_cast<size_t>(cols * cols) * 12 + (size_t{64} << 20) +
                                 2 * (static_cast<size_t>(cols * cols) * 4 + static_cast<size_t>(rows * cols) * 12);
        const std::vector<Result> gpu_tight = ktq::cuda_gptq::quantize(tight, o);
        for (int p = 0; p < 5; ++p) {
            EXPECT_EQ(gpu_tight[static_cast<size_t>(p)].codes, gpu[static_cast<size_t>(p)].codes) << c.name;
            EXPECT_EQ(gpu_tight[static_cast<size_t>(p)].dequantized, gpu[static_cast<size_t>(p)].dequantized) << c.name;
        }
        // Chunks spread over two host threads (the same GPU twice: the
        // multi-device path on a one-GPU host): same results.
        const std::vector<Result> gpu_two = ktq::cuda_gptq::quantize(tight, o, {0, 0});
        for (int p = 0; p < 5; ++p) EXPECT_EQ(gpu_two[static_cast<size_t>(p)].codes, gpu[static_cast<size_t>(p)].codes) << c.name;
        tight.max_device_bytes = 1 << 20;  // not even one problem
        EXPECT_THROW(ktq::cuda_gptq::quantize(tight, o), std::exception);
        for (int p = 0; p < 5; ++p) {
            EXPECT_EQ(gpu_raw[static_cast<size_t>(p)].codes, gpu[static_cast<size_t>(p)].codes) << c.name;
            EXPECT_EQ(gpu_raw[static_cast<size_t>(p)].scales, gpu[static_cast<size_t>(p)].scales) << c.name;
            EXPECT_TRUE(gpu_raw[static_cast<size_t>(p)].dequantized.empty());
        }
        for (int p = 0; p < 5; ++p) {
            const Result cpu = ktq::gptq::quantize(ws[static_cast<size_t>(p)].data(), rows, cols,
                                                   hs[static_cast<size_t>(factor_of[p])], o, pool);
            expect_agree(cpu, gpu[static_cast<size_t>(p)], c.name);
        }
    }
}

TEST(CudaGptq, DeviceHessianMatchesCpuSums) {
    KTQ_REQUIRE_CUDA();
    ktq::ThreadPool pool(4);
    std::mt19937 rng(3);
    const int64_t cols = 256;
    ktq::gptq::Hessian cpu(cols);
    ktq::cuda_gptq::DeviceHessian gpu(cols);
    for (int64_t n : {100, 1, 700}) {
        const std::vector<float> x = inputs(rng, n, cols, 0);
        cpu.add(x.data(), n, pool);
        gpu.add(x.data(), n);
    }
    EXPECT_EQ(gpu.rows(), cpu.rows());
    const std::vector<float> a = cpu.normalized(), b = gpu.normalized();
    double worst = 0;
    for (int64_t i = 0; i < cols; ++i)
        for (int64_t j = 0; j < cols; ++j) {
            const double scale = std::sqrt(static_cast<double>(a[static_cast<size_t>(i * cols + i)]) *
                                           a[static_cast<size_t>(j * cols + j)]);
            worst = std::max(worst, std::abs(static_cast<double>(a[static_cast<size_t>(i * cols + j)]) -
                                             b[static_cast<size_t>(i * cols + j)]) / scale);
        }
    EXPECT_LT(worst, 1e-5) << "largest difference relative to the diagonals";
}

TEST(CudaGptq, NotPositiveDefiniteFallsBackToRtnLikeCpu) {
    KTQ_REQUIRE_CUDA();
    ktq::ThreadPool pool(2);
    std::mt19937 rng(5);
    const int64_t rows = 64, cols = 128;
    // A symmetric matrix with a large negative eigenvalue: Cholesky fails.
    std::vector<float> h(static_cast<size_t>(cols * cols), 0.0f);
    for (int64_t i = 0; i < cols; ++i) h[static_cast<size_t>(i * cols + i)] = i == 3 ? -50.0f : 1.0f;
    const std::vector<float> w = weights(rng, rows, cols);
    Options o;
    o.scheme.group_size = 64;
    o.act_order = ktq::gptq::ActOrder::None;
    ktq::cuda_gptq::Batch batch;
    batch.rows = rows;
    batch.cols = cols;
    batch.hessians.push_back({h.data(), nullptr, 1.0f});
    batch.weights.push_back(w.data());
    batch.factor_of.push_back(0);
    const Result gpu = ktq::cuda_gptq::quantize(batch, o).at(0);
    const Result cpu = ktq::gptq::quantize(w.data(), rows, cols, h, o, pool);
    EXPECT_TRUE(gpu.rtn_fallback);
    EXPECT_EQ(cpu.codes, gpu.codes);
}

TEST(CudaGptq, BadBatchIsRejected) {
    KTQ_REQUIRE_CUDA();
    std::vector<float> h(64 * 64, 0.0f), w(32 * 64, 0.0f);
    Options o;
    o.scheme.group_size = 64;
    ktq::cuda_gptq::Batch batch;
    batch.rows = 32;
    batch.cols = 64;
    batch.hessians.push_back({h.data(), nullptr, 1.0f});
    batch.weights.push_back(w.data());
    batch.factor_of.push_back(1);  // out of range
    EXPECT_THROW(ktq::cuda_gptq::quantize(batch, o), std::exception);
}

TEST(CudaGptq, ExpertCalibratorMatchesCpuForward) {
    KTQ_REQUIRE_CUDA();
    ktq::ThreadPool pool(4);
    std::mt19937 rng(11);
    const int64_t hidden = 128, inter = 96, n = 300;
    const std::vector<float> x = inputs(rng, n, hidden, 0), gate = weights(rng, inter, hidden),
                             up = weights(rng, inter, hidden);
    // CPU: a = silu(x gate^T) * (x up^T), then its Hessian.
    std::vector<float> a(static_cast<size_t>(n * inter));
    for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < inter; ++j) {
            double g = 0, u = 0;
            for (int64_t k = 0; k < hidden; ++k) {
                g += static_cast<double>(x[static_cast<size_t>(t * hidden + k)]) * gate[static_cast<size_t>(j * hidden + k)];
                u += static_cast<double>(x[static_cast<size_t>(t * hidden + k)]) * up[static_cast<size_t>(j * hidden + k)];
            }
            a[static_cast<size_t>(t * inter + j)] = static_cast<float>(g / (1 + std::exp(-g)) * u);
        }
    ktq::gptq::Hessian cpu(inter);
    cpu.add(a.data(), n, pool);
    ktq::cuda_gptq::DeviceRows rows;
    rows.upload(x.data(), n, hidden);
    ktq::cuda_gptq::DeviceHessian down(inter);
    ktq::cuda_gptq::ExpertCalibrator calib;
    calib.add_down_hessian(down, &gate, gate.data(), up.data(), inter, hidden, rows);
    EXPECT_EQ(down.rows(), static_cast<uint64_t>(n));
    const std::vector<float> ha = cpu.normalized(), hb = down.normalized();
    double worst = 0;
    for (int64_t i = 0; i < inter; ++i)
        for (int64_t j = 0; j < inter; ++j) {
            const double scale = std::sqrt(static_cast<double>(ha[static_cast<size_t>(i * inter + i)]) *
                                           ha[static_cast<size_t>(j * inter + j)]);
            worst = std::max(worst, std::abs(static_cast<double>(ha[static_cast<size_t>(i * inter + j)]) -
                                             hb[static_cast<size_t>(i * inter + j)]) / scale);
        }
    EXPECT_LT(worst, 1e-4) << "largest difference relative to the diagonals";
}

// The C API for pipelines with their own forward: ktq_gptq_quantize with
// device = KTQ_DEVICE_CUDA writes the CPU's bytes for the same Hessian.
TEST(CudaGptq, CApiSolvesOnTheGpuWithTheCpuBytes) {
    KTQ_REQUIRE_CUDA();
    std::mt19937 rng(13);
    const uint64_t rows = 64, cols = 256;
    const std::vector<float> x = inputs(rng, 512, static_cast<int64_t>(cols), 0);
    const std::vector<float> w = weights(rng, static_cast<int64_t>(rows), static_cast<int64_t>(cols));
    ktq_gptq *g = nullptr;
    ASSERT_EQ(ktq_gptq_new(&g, cols, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_gptq_add_batch(g, x.data(), 512, nullptr), KTQ_OK);
    ktq_ct_scheme scheme;
    ktq_ct_scheme_init(&scheme, KTQ_CT_SCHEME_VERSION);
    scheme.dtype = KTQ_DTYPE_F32;  // weights passed as floats
    size_t pw = 0, sc = 0, zw = 0;
    ASSERT_EQ(ktq_ct_sizes(&pw, &sc, &zw, rows, cols, &scheme, nullptr), KTQ_OK);
    std::vector<int32_t> packed[2] = {std::vector<int32_t>(pw), std::vector<int32_t>(pw)};
    std::vector<float> scales[2] = {std::vector<float>(sc), std::vector<float>(sc)}, deq[2];
    for (int d = 0; d < 2; ++d) {
        ktq_gptq_options o;
        ktq_gptq_options_init(&o, KTQ_GPTQ_OPTIONS_VERSION);
        o.device = d ? KTQ_DEVICE_CUDA : KTQ_DEVICE_CPU;
        deq[d].resize(rows * cols);
        ktq_error *err = nullptr;
        ASSERT_EQ(ktq_gptq_quantize(packed[d].data(), pw, scales[d].data(), sc, nullptr, 0, deq[d].data(), nullptr,
                                    nullptr, g, w.data(), rows, &scheme, &o, &err),
                  KTQ_OK)
            << (err ? ktq_error_message(err) : "");
    }
    EXPECT_EQ(packed[0], packed[1]);
    EXPECT_EQ(scales[0], scales[1]);
    EXPECT_EQ(deq[0], deq[1]);
    ktq_gptq_free(g);
}
