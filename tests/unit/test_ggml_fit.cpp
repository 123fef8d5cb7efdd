// The eight-lane (AVX2) scale searches against the scalar ones they stand in
// for: every K-quant block and every importance-weighted block must come out
// with the same bytes either way, on varied and hostile data, and the golden
// vectors must hold on the scalar path too (the default path on an AVX2
// machine is the vector one).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "ktq/ktq.h"
#include "quant/ggml_fit.h"

namespace {

// Same bits, except that any NaN equals any NaN: a NaN's sign and payload come
// from which operand the compiler put first, which differs between builds of
// the same scalar code (seen: the ThreadSanitizer build), so they carry no meaning.
bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, 4) == 0; }

struct ForceScalar {
    explicit ForceScalar(bool on) { ktq::ggml_fit::set_force_scalar(on); }
    ~ForceScalar() { ktq::ggml_fit::set_force_scalar(false); }
};

// Super-blocks of 256 values in many shapes: Gaussian at several scales,
// heavy tails, one sign, constant and zero sub-blocks, spikes, ties, values
// near FP16's limits, NaN and Inf (the engine refuses them; the C API must still agree).
std::vector<float> varied_values(size_t superblocks, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> x(superblocks * 256);
    for (size_t b = 0; b < superblocks; ++b) {
        float *v = x.data() + b * 256;
        const int kind = static_cast<int>(b % 13);
        const float scale = std::pow(10.0f, static_cast<float>(static_cast<int>(b % 9)) - 6.0f);
        for (int i = 0; i < 256; ++i) {
            float y = normal(rng) * scale;
            switch (kind) {
            case 1: y = std::pow(uniform(rng), 5.0f) * 100.0f; break;           // heavy tails
            case 2: y = std::fabs(y); break;                                     // one sign
            case 3: y = (i / 16) % 3 == 0 ? 0.25f : y; break;                    // flat sub-blocks
            case 4: y = (i / 32) % 2 == 0 ? 0.0f : y; break;                     // zero sub-blocks
            case 5: y = i % 37 == 0 ? 1e3f : y * 1e-3f; break;                   // spikes
            case 6: y = static_cast<float>(i % 16 - 8) * 0.5f; break;            // ties
            case 7: y = normal(rng) * 6e4f; break;                               // near FP16's max
            case 8: y = normal(rng) * 1e-8f; break;                              // FP16 subnormal scales
            case 9: y = -std::fabs(y) - 1.0f; break;                             // all negative, offset
            case 10: y = uniform(rng) > 0.9f ? y : 0.0f; break;                  // sparse
            case 11: y = i % 50 == 7 ? std::numeric_limits<float>::quiet_NaN() : i % 50 == 9 ? std::numeric_limits<float>::infinity() : y; break;
            default: break;
            }
            v[i] = y;
        }
    }
    return x;
}

std::vector<uint8_t> quantize(const std::vector<float> &x, ktq_ggml_type type, const float *importance, size_t row) {
    std::vector<uint8_t> out(x.size() / ktq_ggml_block_size(type) * ktq_ggml_type_size(type));
    EXPECT_EQ(ktq_quantize_rows(out.data(), out.size(), x.data(), x.size() / row, row, importance, type, nullptr), KTQ_OK);
    return out;
}

}  // namespace

TEST(GgmlFit, EightLanesGiveTheScalarBytesForEveryKQuant) {
    if (!ktq::ggml_fit::x8_available()) GTEST_SKIP() << "no AVX2 on this CPU: only the scalar path runs";
    const size_t row = 2048;
    const std::vector<float> x = varied_values(960, 7);
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> decades(-5.0f, 2.0f);
    std::vector<float> importance(row);
    for (size_t i = 0; i < row; ++i) importance[i] = i % 29 == 0 ? 0.0f : std::pow(10.0f, decades(rng));
    for (ktq_ggml_type t : {KTQ_GGML_Q2_K, KTQ_GGML_Q3_K, KTQ_GGML_Q4_K, KTQ_GGML_Q5_K, KTQ_GGML_Q6_K, KTQ_GGML_Q4_0,
                            KTQ_GGML_Q4_1, KTQ_GGML_Q5_0, KTQ_GGML_Q5_1, KTQ_GGML_Q8_0}) {
        for (const float *imp : {static_cast<const float *>(nullptr), static_cast<const float *>(importance.data())}) {
            const std::vector<uint8_t> vec = quantize(x, t, imp, row);
            std::vector<uint8_t> scalar;
            {
                ForceScalar force(true);
                scalar = quantize(x, t, imp, row);
            }
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < vec.size(); ++i)
                if (vec[i] != scalar[i] && bad++ == 0) first = i;
            EXPECT_EQ(bad, 0u) << ktq_ggml_type_name(t) << (imp ? " with importance" : "") << ": first at block "
                               << first / ktq_ggml_type_size(t);
        }
    }
}

TEST(GgmlFit, EightLanesEqualEightScalarFits) {
    if (!ktq::ggml_fit::x8_available()) GTEST_SKIP() << "no AVX2 on this CPU";
    const std::vector<float> x = varied_values(64, 3);
    std::vector<float> w(x.size());
    for (size_t i = 0; i < x.size(); ++i) w[i] = 0.5f + std::fabs(x[i]) * (i % 5 == 0 ? 0.0f : 1.0f);
    for (int n : {16, 32})
        for (size_t at = 0; at + 8 * static_cast<size_t>(n) <= x.size(); at += 8 * static_cast<size_t>(n)) {
            for (int nmax : {3, 15, 31}) {
                for (int nstep : {0, 15, 36}) {
                    for (bool mad : {false, true}) {
                        uint8_t L[8 * 32], Ls[32], aux[32];
                        float scale[8], neg_min[8];
                        ktq::ggml_fit::affine_x8(n, nmax, x.data() + at, n, w.data() + at, n, L, n, scale, neg_min,
                                                 -0.9f, 0.05f, nstep, mad);
                        for (int k = 0; k < 8; ++k) {
                            float nm;
                            const float s = ktq::ggml_fit::affine(n, nmax, x.data() + at + k * n, w.data() + at + k * n,
                                                                  Ls, &nm, aux, -0.9f, 0.05f, nstep, mad);
                            ASSERT_TRUE(same_float(s, scale[k])) << "affine scale, lane " << k << ": " << s << " vs " << scale[k];
                            ASSERT_TRUE(same_float(nm, neg_min[k])) << "affine min, lane " << k << ": " << nm << " vs " << neg_min[k];
                            ASSERT_EQ(std::memcmp(Ls, L + k * n, static_cast<size_t>(n)), 0) << "affine codes, lane " << k;
                        }
                    }
                }
                int8_t L[8 * 32], Ls[32];
                float scale[8];
                for (const float *weights : {static_cast<const float *>(nullptr), static_cast<const float *>(w.data() + at)}) {
                    ktq::ggml_fit::symmetric_x8(n, nmax + 1, x.data() + at, n, weights, n, L, n, scale);
                    for (int k = 0; k < 8; ++k) {
                        const float s = ktq::ggml_fit::symmetric(n, nmax + 1, x.data() + at + k * n, Ls,
                                                                 weights ? weights + k * n : nullptr);
                        ASSERT_TRUE(same_float(s, scale[k])) << "symmetric scale, lane " << k << ": " << s << " vs " << scale[k];
                        ASSERT_EQ(std::memcmp(Ls, L + k * n, static_cast<size_t>(n)), 0) << "symmetric codes, lane " << k;
                    }
                }
            }
        }
}
