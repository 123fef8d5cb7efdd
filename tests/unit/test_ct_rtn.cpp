// compressed-tensors RTN core: dtype rounding against the compiler's own
// conversions, packing round trips (bit widths whose codes straddle int32
// words included), the round-to-nearest error bound, the C API's buffer
// checks, and - on a machine with a CUDA device - the GPU path producing
// the CPU path's bytes. Byte identity with llm-compressor itself is checked
// on real models by tests/python/test_compressed_tensors.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/ct_rtn_cuda.h"
#include "cuda/cuda_devices.h"
#include "ktq/compressed_tensors.h"
#include "quant/ct_rtn.h"
#include "quant/ct_rtn_math.h"

namespace m = ktq::ct::math;

namespace {

float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Weights of a [rows, cols] matrix exactly representable in `dtype`, with
// the awkward cases every group should meet: an all-zero group, a group of
// one sign, tiny values, and ties.
std::vector<float> test_weights(ktq_dtype dtype, uint64_t rows, uint64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> w(rows * cols);
    for (auto &v : w) v = normal(rng);
    for (uint64_t i = 0; i < std::min<uint64_t>(cols, 64); ++i) w[i] = 0.0f;                 // zero group (row 0)
    if (rows > 1)
        for (uint64_t i = 0; i < cols; ++i) w[cols + i] = std::fabs(w[cols + i]);            // positive row
    if (rows > 2)
        for (uint64_t i = 0; i < cols; ++i) w[2 * cols + i] = w[2 * cols + i] * 1e-30f;      // tiny row
    if (rows > 3)
        for (uint64_t i = 0; i < cols; ++i) w[3 * cols + i] = static_cast<float>(static_cast<int>(i % 16) - 8) * 0.25f;
    ktq::ct::round_to_dtype(dtype, w.data(), w.size());
    return w;
}

}  // namespace

TEST(CtRtnMath, F16RoundingMatchesTheCompiler) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<uint32_t> any;
    for (int i = 0; i < 2000000; ++i) {
        const float f = from_bits(any(rng));
        if (std::isnan(f)) continue;
        const _Float16 h = static_cast<_Float16>(f);
        uint16_t want;
        std::memcpy(&want, &h, 2);
        ASSERT_EQ(m::f16_bits(f), want) << f;
        ASSERT_EQ(m::from_f16(want), static_cast<float>(h));
    }
}

TEST(CtRtnMath, Bf16RoundsToNearestEven) {
    EXPECT_EQ(m::bf16_bits(1.0f), 0x3f80);
    EXPECT_EQ(m::bf16_bits(from_bits(0x3f808000)), 0x3f80);  // tie, even stays
    EXPECT_EQ(m::bf16_bits(from_bits(0x3f818000)), 0x3f82);  // tie, odd rounds up
    EXPECT_EQ(m::bf16_bits(from_bits(0x3f808001)), 0x3f81);
    EXPECT_EQ(m::bf16_bits(from_bits(0x7f7fffff)), 0x7f80);  // overflow to Inf
}

TEST(CtRtnMath, ScaleRules) {
    // symmetric int4: amax / 7.5 rounded to BF16; a zero group gets BF16's eps
    auto p = m::group_params(m::kBF16, 4, true, -0.75f, 0.5f);
    EXPECT_EQ(p.scale, m::round_to(m::kBF16, 0.75f / 7.5f));
    EXPECT_EQ(m::group_params(m::kBF16, 4, true, 0.0f, 0.0f).scale, 0.0078125f);
    EXPECT_EQ(m::group_params(m::kF16, 8, true, 0.0f, 0.0f).scale, 0.0009765625f);
    // asymmetric: zero point maps lo to qmin
    p = m::group_params(m::kF32, 4, false, 0.0f, 1.5f);
    EXPECT_EQ(p.scale, 0.1f);
    EXPECT_EQ(p.zp, -8.0f);
    EXPECT_EQ(m::code_of(m::kF32, 4, 0.0f, p, true), -8);
    EXPECT_EQ(m::code_of(m::kF32, 4, 1.5f, p, false), 7);
    // 0.75390625 / 0.30078125 = 2.5065 in float32: rint gives 3 (Triton); rounded to BF16 first it is
    // 2.5, and rint gives 2 (eager torch).
    p = m::GroupParams{0.30078125f, 0.0f};
    EXPECT_EQ(m::code_of(m::kBF16, 4, 0.75390625f, p, false), 3);
    EXPECT_EQ(m::code_of(m::kBF16, 4, 0.75390625f, p, true), 2);
    // an all-zero asymmetric group: 0/0 gives zero point 0 (torch's int8 cast of NaN)
    EXPECT_EQ(m::group_params(m::kBF16, 4, false, 0.0f, 0.0f).zp, 0.0f);
}

class CtRtnSchemes : public ::testing::TestWithParam<std::tuple<int, int, bool, ktq_dtype>> {};

TEST_P(CtRtnSchemes, RoundTripWithinHalfAStep) {
    ktq::ct::Scheme s;
    std::tie(s.bits, s.group_size, s.symmetric, s.dtype) = GetParam();
    const uint64_t rows = 70, cols = s.group_size > 0 ? 4 * static_cast<uint64_t>(s.group_size) : 200;
    ASSERT_EQ(ktq::ct::shape_problem(s, rows, cols), "");
    const auto w = test_weights(s.dtype, rows, cols, 11);
    const uint64_t groups = ktq::ct::groups_per_row(s, cols);
    std::vector<uint32_t> packed(rows * ktq::ct::packed_words_per_row(s, cols));
    std::vector<uint8_t> scales(ktq::ct::scale_bytes(s, rows, cols));
    std::vector<int8_t> zp(rows * groups), zp_back(rows * groups);
    ASSERT_EQ(ktq::ct::quantize_rows(s, w.data(), rows, cols, packed.data(), scales.data(), s.symmetric ? nullptr : zp.data()), 0u);
    std::vector<uint32_t> zp_packed(ktq::ct::zero_point_words(s, rows) * groups);
    if (!s.symmetric) {
        ktq::ct::pack_zero_points(s, zp.data(), rows, groups, zp_packed.data());
        ktq::ct::unpack_zero_points(s, zp_packed.data(), rows, groups, zp_back.data());
        ASSERT_EQ(zp, zp_back);
    }
    std::vector<float> back(rows * cols);
    ktq::ct::dequantize_rows(s, packed.data(), scales.data(), s.symmetric ? nullptr : zp.data(), rows, cols, back.data());
    const uint64_t glen = cols / groups;
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t g = 0; g < groups; ++g) {
            float lo = 0, hi = 0;
            for (uint64_t i = g * glen; i < (g + 1) * glen; ++i) {
                lo = std::min(lo, w[r * cols + i]);
                hi = std::max(hi, w[r * cols + i]);
            }
            const float step = s.symmetric ? std::max(-lo, hi) / ((1 << s.bits) / 2.0f - 0.5f) : (hi - lo) / ((1 << s.bits) - 1.0f);
            for (uint64_t i = g * glen; i < (g + 1) * glen; ++i) {
                const float x = w[r * cols + i];
                // Half a step, plus the scale's and the result's dtype rounding (and
                // for symmetric schemes the one unreachable code at +qmax+1).
                const float bound = 0.5f * step * (s.symmetric ? 2.0f : 1.0f) * 1.02f + std::fabs(x) * 0.01f + 1e-37f;
                ASSERT_LE(std::fabs(back[r * cols + i] - x), bound) << "row " << r << " col " << i;
            }
        }
}

INSTANTIATE_TEST_SUITE_P(Schemes, CtRtnSchemes,
                         ::testing::Values(std::make_tuple(4, 128, true, KTQ_DTYPE_BF16),
                                           std::make_tuple(8, 128, true, KTQ_DTYPE_BF16),
                                           std::make_tuple(4, 128, false, KTQ_DTYPE_BF16),
                                           std::make_tuple(4, 64, false, KTQ_DTYPE_F16),
                                           std::make_tuple(8, -1, true, KTQ_DTYPE_F32),
                                           std::make_tuple(3, 32, false, KTQ_DTYPE_BF16),
                                           std::make_tuple(5, -1, false, KTQ_DTYPE_F16),
                                           std::make_tuple(2, 16, true, KTQ_DTYPE_F32)));

TEST(CtRtnPack, LsbFirstWords) {
    // int4 codes 0..7 with offset 8 -> nibbles 8..15, first value lowest.
    ktq::ct::Scheme s;
    s.bits = 4;
    s.group_size = -1;
    s.dtype = KTQ_DTYPE_F32;
    std::vector<float> w = {0, 1, 2, 3, 4, 5, 6, 7};  // scale 7/7.5 -> codes 0,1,2,3,4,5,6,7 roughly
    std::vector<uint32_t> packed(1);
    float scale;
    ktq::ct::quantize_rows(s, w.data(), 1, 8, packed.data(), &scale, nullptr);
    for (int i = 0; i < 8; ++i) {
        const int code = static_cast<int>((packed[0] >> (4 * i)) & 0xf) - 8;
        EXPECT_EQ(code, std::min(7, static_cast<int>(std::nearbyint(w[static_cast<size_t>(i)] / scale)))) << i;
    }
}

TEST(CtRtnApi, SizesAndErrors) {
    ktq_ct_scheme s;
    ASSERT_EQ(ktq_ct_scheme_init(&s, KTQ_CT_SCHEME_VERSION), KTQ_OK);
    EXPECT_EQ(s.num_bits, 4);
    EXPECT_EQ(s.group_size, 128);
    size_t packed = 0, scales = 0, zps = 0;
    ASSERT_EQ(ktq_ct_sizes(&packed, &scales, &zps, 256, 512, &s, nullptr), KTQ_OK);
    EXPECT_EQ(packed, 256u * 64);
    EXPECT_EQ(scales, 256u * 4);
    EXPECT_EQ(zps, 0u);
    s.symmetric = 0;
    ASSERT_EQ(ktq_ct_sizes(&packed, &scales, &zps, 256, 512, &s, nullptr), KTQ_OK);
    EXPECT_EQ(zps, 32u * 4);
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_ct_sizes(&packed, &scales, &zps, 256, 500, &s, &err), KTQ_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ktq_error_message(err)).find("not divisible by the group size 128"), std::string::npos);
    ktq_error_free(err);

    // NaN input is refused; small buffers are refused before anything is written.
    std::vector<uint16_t> w(4 * 128, 0x3f80);
    w[5] = 0x7fc0;
    std::vector<int32_t> p(4 * 64), z(1 * 1);
    std::vector<uint16_t> sc(4);
    s.symmetric = 1;
    err = nullptr;
    EXPECT_EQ(ktq_ct_quantize(p.data(), p.size(), sc.data(), sc.size(), nullptr, 0, w.data(), 4, 128, &s, &err),
              KTQ_ERR_FORMAT);
    ktq_error_free(err);
    w[5] = 0x3f80;
    EXPECT_EQ(ktq_ct_quantize(p.data(), 3, sc.data(), sc.size(), nullptr, 0, w.data(), 4, 128, &s, nullptr),
              KTQ_ERR_BUFFER_TOO_SMALL);
    ASSERT_EQ(ktq_ct_quantize(p.data(), p.size(), sc.data(), sc.size(), nullptr, 0, w.data(), 4, 128, &s, nullptr), KTQ_OK);
    std::vector<uint16_t> back(w.size());
    ASSERT_EQ(ktq_ct_dequantize(back.data(), p.data(), p.size(), sc.data(), sc.size(), nullptr, 0, 4, 128, &s, nullptr),
              KTQ_OK);
    const float scale = m::from_bf16(sc[0]), one = m::from_bf16(back[0]);
    EXPECT_LE(std::fabs(one - 1.0f), scale / 2);
    for (uint16_t b : back) EXPECT_EQ(b, back[0]);
}

// The MSE observer's |e|^2.4 is a polynomial, not libm's pow: close enough
// that the search ranks candidates as pow would, except for near ties.
TEST(CtRtnMath, Pow2p4MatchesPow) {
    double worst = 0;
    for (float e = 1e-15f; e < 1e6f; e *= 1.0001f) {  // from where |e|^2.4 is still a normal float
        for (float v : {e, -e}) {
            const double want = std::pow(static_cast<double>(std::fabs(v)), 2.4);
            worst = std::max(worst, std::fabs(m::pow_2p4(v) - want) / want);
        }
    }
    EXPECT_LT(worst, 2e-6);
    EXPECT_EQ(m::pow_2p4(0.0f), 0.0f);
    EXPECT_EQ(m::pow_2p4(1e-30f), 0.0f);  // e^2 below FLT_MIN counts as 0
    EXPECT_NEAR(m::pow_2p4(2.0f), 5.278031643091577, 5.28 * 2e-6);
}

// The MSE observer never does worse than min-max on its own measure (p = 1 is
// its first candidate), does better on groups with an outlier, and leaves a
// group whose range is already optimal alone.
TEST(CtRtnMath, MseObserverSearchesTheShrunkRanges) {
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    int better = 0;
    for (int g = 0; g < 200; ++g) {
        float x[128];
        for (float &v : x) v = m::round_to(m::kBF16, normal(rng));
        if (g % 2) x[g % 128] = m::round_to(m::kBF16, 0.2f);  // one outlier
        float lo = x[0], hi = x[0];
        for (float v : x) lo = std::min(lo, v), hi = std::max(hi, v);
        for (bool sym : {true, false}) {
            const m::GroupParams a = m::group_params(m::kBF16, 4, sym, lo, hi);
            const m::GroupParams b = m::mse_group_params(m::kBF16, 4, sym, false, x, 128, lo, hi);
            auto err = [&](const m::GroupParams &p) {
                double e = 0;
                for (float v : x) e += std::pow(std::fabs(m::value_of(m::kBF16, m::code_of(m::kBF16, 4, v, p, false), p) - v), 2.4);
                return e;
            };
            EXPECT_LE(err(b), err(a) * (1 + 1e-5));
            EXPECT_LE(b.scale, a.scale);  // only ever shrinks
            better += err(b) < err(a) * 0.99;
        }
    }
    EXPECT_GT(better, 100);
    const float two_levels[4] = {-0.5f, 0.5f, -0.5f, 0.5f};  // every weight exactly on a code with p = 1
    const m::GroupParams p = m::mse_group_params(m::kF32, 4, false, false, two_levels, 4, -0.5f, 0.5f);
    const m::GroupParams q = m::group_params(m::kF32, 4, false, -0.5f, 0.5f);
    EXPECT_EQ(p.scale, q.scale);
    EXPECT_EQ(p.zp, q.zp);
}

// The host's row quantizer runs its own, vectorised copy of the MSE search:
// the same scales and zero points as the generic math::mse_group_params
// (what the CUDA kernels run), group by group.
TEST(CtRtnMath, MseHostSearchMatchesTheGenericOne) {
    size_t groups_checked = 0;
    for (int bits : {4, 8})
        for (int group : {128, 12, -1})
            for (bool sym : {true, false})
                for (ktq_dtype dtype : {KTQ_DTYPE_BF16, KTQ_DTYPE_F16, KTQ_DTYPE_F32})
                    for (bool dtype_rounding : {false, true}) {
                        ktq::ct::Scheme s;
                        s.bits = bits;
                        s.group_size = group;
                        s.symmetric = sym;
                        s.dtype = dtype;
                        s.dtype_rounding = dtype_rounding;
                        s.observer = ktq::ct::Observer::kMse;
                        const uint64_t rows = 24, cols = 384;
                        const auto w = test_weights(dtype, rows, cols, static_cast<uint32_t>(bits * 7 + group));
                        const uint64_t groups = ktq::ct::groups_per_row(s, cols), glen = cols / groups;
                        std::vector<uint32_t> packed(rows * ktq::ct::packed_words_per_row(s, cols));
                        std::vector<uint8_t> scales(ktq::ct::scale_bytes(s, rows, cols));
                        std::vector<int8_t> zp(rows * groups);
                        ktq::ct::quantize_rows(s, w.data(), rows, cols, packed.data(), scales.data(), sym ? nullptr : zp.data());
                        const int dt = dtype == KTQ_DTYPE_BF16 ? m::kBF16 : dtype == KTQ_DTYPE_F16 ? m::kF16 : m::kF32;
                        for (uint64_t g = 0; g < rows * groups; ++g) {
                            const float *x = w.data() + g * glen;
                            float lo = x[0], hi = x[0];
                            for (uint64_t k = 0; k < glen; ++k) lo = std::min(lo, x[k]), hi = std::max(hi, x[k]);
                            const m::GroupParams p = m::mse_group_params(dt, bits, sym, dtype_rounding, x, static_cast<int>(glen), lo, hi);
                            float got;
                            if (dtype == KTQ_DTYPE_F32) {
                                std::memcpy(&got, scales.data() + 4 * g, 4);
                            } else {
                                uint16_t b;
                                std::memcpy(&b, scales.data() + 2 * g, 2);
                                got = dtype == KTQ_DTYPE_BF16 ? m::from_bf16(b) : m::from_f16(b);
                            }
                            ASSERT_EQ(got, p.scale) << bits << " " << group << " " << sym << " " << dtype << " group " << g;
                            if (!sym) ASSERT_EQ(zp[g], static_cast<int8_t>(p.zp)) << bits << " " << group << " group " << g;
                            ++groups_checked;
                        }
                    }
    EXPECT_GT(groups_checked, 10000u);
}

TEST(CudaCtRtn, SameBytesAsCpu) {
    std::string name;
    if (ktq::cuda_device_count(&name) == 0) GTEST_SKIP() << "no CUDA device on this machine (GPU tests run on the GPU host)";
    size_t cases = 0;
    for (int bits : {4, 8, 3})
        for (int group : {128, 32, -1})
            for (bool sym : {true, false})
                for (ktq_dtype dtype : {KTQ_DTYPE_BF16, KTQ_DTYPE_F16, KTQ_DTYPE_F32})
                  for (bool dtype_rounding : {false, true})
                   for (ktq::ct::Observer observer : {ktq::ct::Observer::kMinMax, ktq::ct::Observer::kMse}) {
                    ktq::ct::Scheme s;
                    s.observer = observer;
                    s.dtype_rounding = dtype_rounding;
                    s.bits = bits;
                    s.group_size = group;
                    s.symmetric = sym;
                    s.dtype = dtype;
                    const uint64_t rows = 96, cols = 384;
                    const auto w = test_weights(dtype, rows, cols, static_cast<uint32_t>(bits * 1000 + group));
                    const uint64_t groups = ktq::ct::groups_per_row(s, cols);
                    std::vector<uint32_t> p1(rows * ktq::ct::packed_words_per_row(s, cols)), p2(p1.size());
                    std::vector<uint8_t> s1(ktq::ct::scale_bytes(s, rows, cols)), s2(s1.size());
                    std::vector<int8_t> z1(rows * groups), z2(z1.size());
                    ktq::ct::quantize_rows(s, w.data(), rows, cols, p1.data(), s1.data(), sym ? nullptr : z1.data());
                    ktq::cuda_ct_quantize_rows(s, w.data(), false, rows, cols, p2.data(), s2.data(), sym ? nullptr : z2.data());
                    ASSERT_EQ(p1, p2) << bits << " " << group << " " << sym << " " << dtype;
                    ASSERT_EQ(s1, s2) << bits << " " << group << " " << sym << " " << dtype;
                    ASSERT_EQ(z1, z2) << bits << " " << group << " " << sym << " " << dtype;
                    if (dtype == KTQ_DTYPE_BF16) {  // the BF16-input path too
                        std::vector<uint16_t> raw(w.size());
                        for (size_t k = 0; k < w.size(); ++k) raw[k] = m::bf16_bits(w[k]);
                        std::fill(p2.begin(), p2.end(), 0u);
                        ktq::cuda_ct_quantize_rows(s, raw.data(), true, rows, cols, p2.data(), s2.data(), sym ? nullptr : z2.data());
                        ASSERT_EQ(p1, p2) << "bf16 input " << bits << " " << group << " " << sym;
                        ASSERT_EQ(s1, s2) << "bf16 input " << bits << " " << group << " " << sym;
                    }
                    ++cases;
                }
    std::printf("%zu schemes identical on %s\n", cases, name.c_str());
}
