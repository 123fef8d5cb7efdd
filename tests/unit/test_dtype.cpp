// Scalar conversions against values worked out by hand from the formats'
// definitions (OCP FP8, IEEE half, bfloat16 round-to-nearest-even).
#include <gtest/gtest.h>

#include <cmath>

#include "reading/dtype.h"

using namespace ktq;

TEST(Dtype, NamesAndSizesFollowSafetensors) {
    EXPECT_EQ(dtype_from_name("BF16"), KTQ_DTYPE_BF16);
    EXPECT_EQ(dtype_from_name("F8_E4M3"), KTQ_DTYPE_F8_E4M3);
    EXPECT_EQ(dtype_from_name("F8_E5M2"), KTQ_DTYPE_F8_E5M2);
    EXPECT_EQ(dtype_from_name("bf16"), KTQ_DTYPE_UNKNOWN);
    EXPECT_EQ(dtype_size(KTQ_DTYPE_F32), 4u);
    EXPECT_EQ(dtype_size(KTQ_DTYPE_F8_E4M3), 1u);
    EXPECT_STREQ(dtype_name(KTQ_DTYPE_I64), "I64");
}

TEST(Dtype, Bf16RoundsToNearestEven) {
    // 1 + 2^-8 lies exactly between bf16 1.0 and 1 + 2^-7: ties go to even (1.0).
    EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
    // 1 + 3*2^-8 lies between 1+2^-7 (odd mantissa) and 1+2^-6: goes up to even.
    EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
    // Just above the tie rounds up.
    EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
    EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
    EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
    uint16_t nan = f32_to_bf16(NAN);
    EXPECT_EQ(nan & 0x7f80, 0x7f80);
    EXPECT_NE(nan & 0x007f, 0);  // still a NaN, not an infinity
    // The largest float rounds to infinity, as torch does.
    EXPECT_EQ(f32_to_bf16(3.4028235e38f), 0x7f80);
}

TEST(Dtype, Fp8E4M3MatchesTheOcpDefinition) {
    EXPECT_EQ(f8e4m3_to_f32(0x00), 0.0f);
    EXPECT_EQ(f8e4m3_to_f32(0x38), 1.0f);             // exponent 7 = bias
    EXPECT_EQ(f8e4m3_to_f32(0x7e), 448.0f);           // largest finite
    EXPECT_EQ(f8e4m3_to_f32(0xfe), -448.0f);
    EXPECT_EQ(f8e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
    EXPECT_EQ(f8e4m3_to_f32(0x08), std::ldexp(1.0f, -6));  // smallest normal
    EXPECT_TRUE(std::isnan(f8e4m3_to_f32(0x7f)));
    EXPECT_TRUE(std::isnan(f8e4m3_to_f32(0xff)));
    EXPECT_EQ(f8e4m3_to_f32(0x78), 256.0f);  // no infinities in the fn variant
}

TEST(Dtype, Fp8E5M2MatchesTheOcpDefinition) {
    EXPECT_EQ(f8e5m2_to_f32(0x3c), 1.0f);
    EXPECT_EQ(f8e5m2_to_f32(0x7b), 57344.0f);
    EXPECT_EQ(f8e5m2_to_f32(0x7c), INFINITY);
    EXPECT_EQ(f8e5m2_to_f32(0xfc), -INFINITY);
    EXPECT_TRUE(std::isnan(f8e5m2_to_f32(0x7d)));
    EXPECT_EQ(f8e5m2_to_f32(0x01), std::ldexp(1.0f, -16));
}

TEST(Dtype, HalfPrecision) {
    EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
    EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
    EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
    EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(f16_to_f32(0x7c00), INFINITY);
    EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
}

TEST(Dtype, BulkConversionsAgreeWithScalarOnes) {
    std::vector<uint16_t> halves(65536);
    for (size_t i = 0; i < halves.size(); ++i) halves[i] = static_cast<uint16_t>(i);
    std::vector<uint16_t> bf(halves.size());
    convert_to_bf16(bf.data(), halves.data(), KTQ_DTYPE_F16, halves.size());
    for (size_t i = 0; i < halves.size(); ++i) {
        uint16_t want = f32_to_bf16(f16_to_f32(halves[i]));
        if (std::isnan(f16_to_f32(halves[i]))) continue;
        ASSERT_EQ(bf[i], want) << "f16 bits " << i;
    }
}
