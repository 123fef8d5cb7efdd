// kt-kernel AMX packing: the AVX-512 and portable paths give the same bytes
// (hard cases included), unpacking inverts packing, and shapes that cannot be
// tiled are refused. Byte identity with kt-kernel itself is checked by
// tests/python/test_kt_format.py against golden vectors from its operator.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <vector>

#include "quant/kt_amx.h"
#include "test_support.h"

namespace {

using ktq::kt_amx::Method;

uint16_t to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}
float from_bf16(uint16_t v) {
    uint32_t u = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Random weights plus rows that stress the rounding: all zero, constant,
// ties at .5 after scaling, a single spike, tiny (subnormal-range) values.
std::vector<uint16_t> hard_matrix(uint64_t n, uint64_t k, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    std::vector<uint16_t> w(n * k);
    for (auto &v : w) v = to_bf16(dist(rng));
    for (uint64_t c = 0; c < k; ++c) {
        w[0 * k + c] = 0;
        w[1 * k + c] = to_bf16(0.25f);
        w[2 * k + c] = to_bf16(static_cast<float>(static_cast<int>(c % 255) - 127) / 2.0f);  // halves
        w[3 * k + c] = c == 5 ? to_bf16(-3.0f) : to_bf16(1e-3f);
        w[4 * k + c] = to_bf16((c % 2 ? 1 : -1) * 1e-38f);
    }
    // The six bf16 mantissas where amax * fl(1/127) != amax / 127.
    const float awkward[] = {1.1171875f, 1.125f, 1.3671875f, 1.6171875f, 1.625f, 1.8671875f};
    for (int i = 0; i < 6; ++i) w[(5 + i) * k + 7] = to_bf16(awkward[i]);
    return w;
}

class KtAmxPaths : public ::testing::TestWithParam<std::tuple<Method, uint64_t, uint64_t>> {};

TEST_P(KtAmxPaths, Avx512AndPortableGiveTheSameBytes) {
    const auto [m, n, k] = GetParam();
    const auto w = hard_matrix(n, k, 11);
    std::vector<uint8_t> a(ktq::kt_amx::packed_bytes(m, n, k)), b(a.size());
    std::vector<float> sa(n), sb(n);
    ktq::kt_amx::set_force_portable(false);
    const bool vector_path = ktq::kt_amx::uses_avx512();
    ktq::kt_amx::quantize_pack(m, w.data(), n, k, k, a.data(), sa.data());
    ktq::kt_amx::set_force_portable(true);
    ktq::kt_amx::quantize_pack(m, w.data(), n, k, k, b.data(), sb.data());
    ktq::kt_amx::set_force_portable(false);
    EXPECT_EQ(a, b);
    EXPECT_EQ(0, std::memcmp(sa.data(), sb.data(), n * 4));
    if (!vector_path) GTEST_LOG_(INFO) << "no AVX-512 here: both runs took the portable path";
}

TEST_P(KtAmxPaths, UnpackReturnsTheQuantizedWeights) {
    const auto [m, n, k] = GetParam();
    const auto w = hard_matrix(n, k, 5);
    std::vector<uint8_t> packed(ktq::kt_amx::packed_bytes(m, n, k));
    std::vector<float> scales(n), deq(n * k);
    ktq::kt_amx::quantize_pack(m, w.data(), n, k, k, packed.data(), scales.data());
    ktq::kt_amx::unpack_dequantize(m, packed.data(), scales.data(), n, k, deq.data());
    for (uint64_t r = 0; r < n; ++r) {
        float amax = 0;
        for (uint64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(from_bf16(w[r * k + c])));
        // Symmetric per-row: the error of each weight is at most half a step
        // (INT8: amax/127; INT4: 16 * amax/112 plus the first rounding).
        const float step = m == Method::Int8 ? amax / 127.0f : amax / 7.0f;
        for (uint64_t c = 0; c < k; ++c)
            ASSERT_LE(std::fabs(deq[r * k + c] - from_bf16(w[r * k + c])), step * 0.5f + step * 0.07f + 1e-30f)
                << "row " << r << " col " << c;
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, KtAmxPaths,
                         ::testing::Values(std::make_tuple(Method::Int8, 64, 256), std::make_tuple(Method::Int4, 64, 256),
                                           std::make_tuple(Method::Int8, 96, 7296),   // 3 N strips, 3 K blocks
                                           std::make_tuple(Method::Int4, 160, 7296),  // short last N block
                                           std::make_tuple(Method::Int4, 32, 128)));

TEST(KtAmx, ShapesThatCannotBeTiledAreExplained) {
    EXPECT_EQ("", ktq::kt_amx::shape_problem(Method::Int4, 256, 7168));
    EXPECT_NE(std::string::npos, ktq::kt_amx::shape_problem(Method::Int4, 100, 256).find("multiple of 32"));
    EXPECT_NE(std::string::npos, ktq::kt_amx::shape_problem(Method::Int4, 64, 64).find("multiple of 128"));
    EXPECT_EQ("", ktq::kt_amx::shape_problem(Method::Int8, 64, 64));
    EXPECT_NE("", ktq::kt_amx::shape_problem(Method::Int8, 0, 64));
}

TEST(KtAmx, KnownScaleOfTheShippedBinary) {
    // amax 1.125: kt-kernel 0.7.2 multiplies by fl(1/127) and gets 0x3C112244,
    // one ulp below the true quotient (docs/formats/kt-kernel.md).
    std::vector<uint16_t> w(64, 0);
    w[0] = to_bf16(1.125f);
    std::vector<uint8_t> packed(64 * 32);
    std::vector<float> s(32);
    std::vector<uint16_t> m(32 * 64, 0);
    std::copy(w.begin(), w.end(), m.begin());
    ktq::kt_amx::quantize_pack(Method::Int8, m.data(), 32, 64, 64, packed.data(), s.data());
    uint32_t bits;
    std::memcpy(&bits, &s[0], 4);
    EXPECT_EQ(0x3C112244u, bits);
    EXPECT_EQ(0.0f, s[1]);  // an all-zero row: scale 0, codes 0
}


// kt-kernel 0.7.2's own bytes for rows at the edges of its arithmetic
// (zero, subnormal, near-subnormal scales, halves, awkward mantissas), from
// tests/golden/make_kt_golden.py, on both code paths.
TEST(KtAmx, EdgeRowsMatchKtKernelOnBothPaths) {
    std::ifstream in(KTQ_GOLDEN_DIR "/kt_amx.json");
    ASSERT_TRUE(in) << KTQ_GOLDEN_DIR "/kt_amx.json";
    const auto golden = nlohmann::json::parse(in)["edge"];
    const uint64_t n = golden["shape"][0], k = golden["shape"][1];
    const std::string raw = ktq_test::b64decode(golden["input_bf16"].get<std::string>());
    ASSERT_EQ(raw.size(), n * k * 2);
    std::vector<uint16_t> w(n * k);
    std::memcpy(w.data(), raw.data(), raw.size());
    for (Method m : {Method::Int8, Method::Int4}) {
        const auto &want = golden[m == Method::Int8 ? "int8" : "int4"];
        for (bool portable : {false, true}) {
            ktq::kt_amx::set_force_portable(portable);
            std::vector<uint8_t> packed(ktq::kt_amx::packed_bytes(m, n, k));
            std::vector<float> scales(n);
            ktq::kt_amx::quantize_pack(m, w.data(), n, k, k, packed.data(), scales.data());
            const std::string scale_bytes(reinterpret_cast<const char *>(scales.data()), n * 4);
            EXPECT_EQ(ktq_test::b64decode(want["packed"].get<std::string>()), std::string(packed.begin(), packed.end()))
                << ktq::kt_amx::method_prefix(m) << (portable ? " portable" : " avx512");
            EXPECT_EQ(ktq_test::b64decode(want["scales"].get<std::string>()), scale_bytes)
                << ktq::kt_amx::method_prefix(m) << (portable ? " portable" : " avx512");
        }
    }
    ktq::kt_amx::set_force_portable(false);
}

}  // namespace
