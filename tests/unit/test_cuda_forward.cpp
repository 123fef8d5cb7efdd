// The forward pass's CUDA backends against the CPU: cuda/cuda_matmul.h's
// causal attention for GQA and MLA-shaped operands and the weight cache's
// invalidation by address that AWQ's candidate weights rely on; and
// cuda/cuda_forward.h's whole layers on the device, per-position losses of
// real checkpoints (every architecture family the shared models and the
// in-repo example cover) against the CPU forward, including the fallback to
// per-product layers when device memory is short. Runs on a machine with a
// CUDA device (the GPU host); skips with the reason elsewhere.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cuda/cuda_devices.h"
#include "cuda/cuda_forward.h"
#include "cuda/cuda_matmul.h"
#include "forward/attention.h"
#include "forward/forward_config.h"
#include "forward/perplexity.h"
#include "reading/model.h"
#include "runtime/thread_pool.h"
#include "test_support.h"

namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float &x : v) x = d(rng);
    return v;
}

// Largest |gpu - cpu| over the largest |cpu|.
double relative_gap(const std::vector<float> &cpu, const std::vector<float> &gpu) {
    double gap = 0, scale = 0;
    for (size_t i = 0; i < cpu.size(); ++i) {
        gap = std::max(gap, static_cast<double>(std::fabs(cpu[i] - gpu[i])));
        scale = std::max(scale, static_cast<double>(std::fabs(cpu[i])));
    }
    return gap / scale;
}

void expect_same_attention(const ktq::AttentionShape &a, size_t q_size, size_t k_size, size_t v_size, size_t v_offset,
                           size_t out_size) {
    ktq::ThreadPool pool(2);
    const std::vector<float> q = random_values(q_size, 1), k = random_values(k_size, 2), v = random_values(v_size, 3);
    std::vector<float> cpu(out_size, 7.0f), gpu(out_size, 7.0f);  // 7: values between heads stay
    ktq::causal_attention(cpu.data(), q.data(), k.data(), v.data() + v_offset, a, pool);
    auto backend = ktq::make_cuda_matmul(0);
    ASSERT_TRUE(backend->causal_attention(gpu.data(), q.data(), k.data(), v.data() + v_offset, a));
    EXPECT_LT(relative_gap(cpu, gpu), 1e-5);
    size_t untouched = 0;
    for (size_t i = 0; i < cpu.size(); ++i) untouched += cpu[i] == 7.0f && gpu[i] == 7.0f;
    const size_t written = static_cast<size_t>(a.tokens() * a.heads * a.dv);
    EXPECT_EQ(untouched, out_size - written);
}

}  // namespace

TEST(CudaForward, GqaAttentionMatchesCpu) {
    if (ktq::cuda_device_count(nullptr) == 0) GTEST_SKIP() << "no CUDA device on this machine (GPU tests run on the GPU host)";
    ktq::AttentionShape a;  // 3 windows of 37 tokens, 8 query heads over 2 key/value heads of 64
    a.seqs = 3, a.seq_len = 37, a.heads = 8, a.group = 4, a.dq = a.dv = 64;
    a.q_row = a.out_row = 8 * 64, a.k_row = a.v_row = 2 * 64;
    a.q_head = a.k_head = a.v_head = a.out_head = 64;
    a.scale = 0.125f;
    const size_t n = static_cast<size_t>(a.tokens());
    expect_same_attention(a, n * 512, n * 128, n * 128, 0, n * 512);
}

TEST(CudaForward, MlaShapedAttentionMatchesCpu) {
    if (ktq::cuda_device_count(nullptr) == 0) GTEST_SKIP() << "no CUDA device on this machine (GPU tests run on the GPU host)";
    // DeepSeek's layout: keys of 48 (32 + 16 rotary), values inside [nope 32 | v 24] rows, output rows wider
    // than the heads (a gap of 5 after each head's 24 values, which must stay as they were).
    ktq::AttentionShape a;
    a.seqs = 2, a.seq_len = 300, a.heads = 4, a.group = 1, a.dq = 48, a.dv = 24;
    a.q_row = a.k_row = 4 * 48, a.q_head = a.k_head = 48;
    a.v_row = 4 * 56, a.v_head = 56;
    a.out_row = 4 * 29, a.out_head = 29;
    a.scale = 0.3f;
    const size_t n = static_cast<size_t>(a.tokens());
    expect_same_attention(a, n * 192, n * 192, n * 224, 32, n * 116);
}

TEST(CudaForward, ForgettingOneWeightReloadsIt) {
    if (ktq::cuda_device_count(nullptr) == 0) GTEST_SKIP() << "no CUDA device on this machine (GPU tests run on the GPU host)";
    auto backend = ktq::make_cuda_matmul(0);
    std::vector<float> a = random_values(4 * 8, 4), w = random_values(3 * 8, 5), w2 = random_values(3 * 8, 6);
    std::vector<float> c1(12), c2(12), c3(12);
    backend->abt(c1.data(), a.data(), w.data(), 4, 8, 3, true);
    backend->abt(c2.data(), a.data(), w2.data(), 4, 8, 3, true);  // a second weight, kept too
    for (float &x : w) x *= 2.0f;
    backend->abt(c3.data(), a.data(), w.data(), 4, 8, 3, true);
    EXPECT_EQ(c1, c3) << "the kept copy is used while the address is remembered";
    backend->forget(w.data());
    backend->abt(c3.data(), a.data(), w.data(), 4, 8, 3, true);
    for (size_t i = 0; i < c1.size(); ++i) EXPECT_NEAR(c3[i], 2.0f * c1[i], 1e-5f * (1 + std::fabs(c1[i])));
    for (float &x : w2) x *= 3.0f;  // not forgotten: still the old copy
    std::vector<float> c4(12);
    backend->abt(c4.data(), a.data(), w2.data(), 4, 8, 3, true);
    EXPECT_EQ(c2, c4);
}

TEST(CudaForward, SwigluMatchesCpu) {
    if (ktq::cuda_device_count(nullptr) == 0) GTEST_SKIP() << "no CUDA device on this machine (GPU tests run on the GPU host)";
    const int64_t rows = 37, in = 64, inter = 48, out = 40;
    const std::vector<float> x = random_values(rows * in, 7), gate = random_values(inter * in, 8),
                             up = random_values(inter * in, 9), down = random_values(out * inter, 10);
    // The CPU forward's arithmetic: products, then silu(g) * u, then down.
    std::vector<float> h(static_cast<size_t>(rows * inter)), y(static_cast<size_t>(rows * out));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < inter; ++j) {
            double g = 0, u = 0;
            for (int64_t c = 0; c < in; ++c) {
                g += static_cast<double>(x[r * in + c]) * gate[j * in + c];
                u += static_cast<double>(x[r * in + c]) * up[j * in + c];
            }
            const float gf = static_cast<float>(g);
            h[r * inter + j] = gf / (1.0f + std::exp(-gf)) * static_cast<float>(u);
        }
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < out; ++o) {
            double acc = 0;
            for (int64_t j = 0; j < inter; ++j) acc += static_cast<double>(h[r * inter + j]) * down[o * inter + j];
            y[r * out + o] = static_cast<float>(acc);
        }
    auto backend = ktq::make_cuda_matmul(0);
    std::vector<float> gh(h.size()), gy(y.size());
    ASSERT_TRUE(backend->swiglu(gh.data(), x.data(), gate.data(), up.data(), nullptr, rows, in, inter, 0));
    ASSERT_TRUE(backend->swiglu(gy.data(), x.data(), gate.data(), up.data(), down.data(), rows, in, inter, out));
    EXPECT_LT(relative_gap(h, gh), 1e-5);
    EXPECT_LT(relative_gap(y, gy), 1e-5);
}

namespace {

// Per-position losses of `model` on 6 windows of 96 pseudo-random tokens (every id below the vocabulary).
std::vector<double> window_losses(const std::string &path, bool cuda, size_t memory_limit = 0,
                                  int64_t cuda_batch = 4, ktq::PerplexityResult *result = nullptr) {
    ktq_open_options o;
    ktq_open_options_init(&o, KTQ_OPEN_OPTIONS_VERSION);
    o.threads = 2;
    const ktq::Model model(path, o);
    const ktq::ForwardConfig cfg = ktq::ForwardConfig::resolve(model);
    std::mt19937 rng(11);
    std::vector<int32_t> tokens(6 * 96);
    for (int32_t &t : tokens) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(cfg.vocab));
    ktq::PerplexityOptions p;
    p.window = 96;
    p.max_tokens = 0;
    p.batch_windows = 4;
    p.cuda = cuda;
    p.cuda_batch_windows = cuda_batch;  // 4 of 6: a full batch and a partial one
    p.cuda_memory_limit = memory_limit;
    std::vector<double> nll;
    p.token_nll = &nll;
    const ktq::PerplexityResult r = ktq::evaluate_perplexity(model, tokens, p);
    if (result) *result = r;
    return nll;
}

double max_gap(const std::vector<double> &a, const std::vector<double> &b) {
    EXPECT_EQ(a.size(), b.size());
    double gap = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) gap = std::max(gap, std::fabs(a[i] - b[i]));
    return gap;
}

int layers_of(const std::string &path) {
    ktq_open_options o;
    ktq_open_options_init(&o, KTQ_OPEN_OPTIONS_VERSION);
    return ktq::ForwardConfig::resolve(ktq::Model(path, o)).layers;
}

void expect_device_layers_match_cpu(const std::string &path) {
    ktq::PerplexityResult r;
    const std::vector<double> cpu = window_losses(path, false), gpu = window_losses(path, true, 0, 4, &r);
    ASSERT_EQ(cpu.size(), 6u * 95u);
    EXPECT_EQ(r.device_layers, static_cast<uint64_t>(layers_of(path))) << "every layer whole on the device";
    EXPECT_TRUE(r.head_on_device);
    // float32 on both sides; products and reductions sum in different orders.
    EXPECT_LT(max_gap(cpu, gpu), 2e-4) << path;
    double mean = 0;
    for (double v : cpu) mean += v;
    EXPECT_GT(mean / static_cast<double>(cpu.size()), 1.0) << "losses of a real model on random tokens";
}

}  // namespace

TEST(CudaForward, WholeLayersOnTheDeviceMatchTheCpuDeepSeekMla) {
    if (ktq::cuda_device_count(nullptr) == 0) GTEST_SKIP() << "no CUDA device on this machine (GPU tests run on the GPU host)";
    // MLA with q_lora, interleaved RoPE, grouped sigmoid routing, shared experts, a dense first layer; FP8 input.
    expect_device_layers_match_cpu(std::string(KTQ_REPO_DIR) + "/examples/models/tiny-deepseek-v3-fp8");
}

TEST(CudaForward, WholeLayersOnTheDeviceMatchTheCpuSharedModels) {
    if (ktq::cuda_device_count(nullptr) == 0) GTEST_SKIP() << "no CUDA device on this machine (GPU tests run on the GPU host)";
    const std::string llama = ktq_test::shared_model("tiny-llama");
    KTQ_REQUIRE_SHARED(llama);
    for (const char *name : {"tiny-llama", "tiny-qwen3-moe", "tiny-mixtral"}) {  // GQA, q/k norms, softmax top-k
        const std::string path = ktq_test::shared_model(name);
        if (path.empty()) ADD_FAILURE() << name << " is missing from the shared models";
        else expect_device_layers_match_cpu(path);
    }
}

TEST(CudaForward, ShortDeviceMemoryFallsBackToPerProductLayers) {
    if (ktq::cuda_device_count(nullptr) == 0) GTEST_SKIP() << "no CUDA device on this machine (GPU tests run on the GPU host)";
    // tiny-deepseek-v3-fp8: layer 0 dense, layers 1-2 MoE (16 experts), which need more device memory.
    const std::string path = std::string(KTQ_REPO_DIR) + "/examples/models/tiny-deepseek-v3-fp8";
    ktq_open_options o;
    ktq_open_options_init(&o, KTQ_OPEN_OPTIONS_VERSION);
    const ktq::Model model(path, o);
    const ktq::ForwardConfig cfg = ktq::ForwardConfig::resolve(model);
    auto probe = ktq::make_cuda_forward(cfg, 6, 96, 4, 0);
    ASSERT_NE(probe, nullptr);
    const size_t dense = probe->bytes_needed(ktq::load_layer(model, cfg, 0), 4),
                 moe = probe->bytes_needed(ktq::load_layer(model, cfg, 1), 1);
    ASSERT_LT(dense, moe);
    probe.reset();
    const size_t hidden_and_margin = 6 * 96 * static_cast<size_t>(cfg.hidden) * 4 + ktq::kCudaForwardMargin,
                 fixed = hidden_and_margin + 2 * 96 * cfg.rope_inv_freq.size() * 4;  // + RoPE tables
    const std::vector<double> cpu = window_losses(path, false);
    ktq::PerplexityResult r;
    // Room for the dense layer, not for a MoE one: device, then per product (hidden states down), head on the host.
    EXPECT_LT(max_gap(cpu, window_losses(path, true, fixed + (dense + moe) / 2, 4, &r)), 2e-4);
    EXPECT_EQ(r.device_layers, 1u);
    EXPECT_FALSE(r.head_on_device);  // the head's chunk and logits (13.6 MB) need more than the MoE layer
    // Room for the MoE layers only with one window per batch: every layer on the device, smaller batches.
    EXPECT_LT(max_gap(cpu, window_losses(path, true, fixed + moe + 4096, 4, &r)), 2e-4);
    EXPECT_EQ(r.device_layers, 3u);
    EXPECT_TRUE(r.head_on_device);
    // No room for the hidden states: no whole-layer forward at all.
    EXPECT_EQ(ktq::make_cuda_forward(cfg, 6, 96, 4, 0, hidden_and_margin - 4096), nullptr);
    EXPECT_EQ(ktq::make_cuda_forward(cfg, 6, 96, 4, 0, fixed - 1), nullptr);  // the RoPE tables count too
    EXPECT_NE(ktq::make_cuda_forward(cfg, 6, 96, 4, 0, fixed), nullptr);
    EXPECT_LT(max_gap(cpu, window_losses(path, true, hidden_and_margin - 4096, 4, &r)), 2e-4);
    EXPECT_EQ(r.device_layers, 0u);
    EXPECT_FALSE(r.head_on_device);
    // One window per batch gives the same losses as four (cuBLAS may pick another kernel for another row count:
    // measured 1.1e-5 on an H200; a batch's rows mixed up would move the losses by whole units).
    EXPECT_LT(max_gap(window_losses(path, true), window_losses(path, true, 0, 1)), 1e-4);
}

TEST(CudaForward, AttentionOverSeveralScoreChunksMatchesCpu) {
    if (ktq::cuda_device_count(nullptr) == 0) GTEST_SKIP() << "no CUDA device on this machine (GPU tests run on the GPU host)";
    // 9 windows of 4096 tokens: 576 MiB of scores per head, so two chunks of windows (8 + 1) under the 512 MiB cap.
    ktq::AttentionShape a;
    a.seqs = 9, a.seq_len = 4096, a.heads = 2, a.group = 2, a.dq = a.dv = 16;
    a.q_row = a.out_row = 32, a.k_row = a.v_row = 16;
    a.q_head = a.out_head = 16, a.k_head = a.v_head = 0;
    a.scale = 0.25f;
    const size_t n = static_cast<size_t>(a.tokens());
    expect_same_attention(a, n * 32, n * 16, n * 16, 0, n * 32);
}
