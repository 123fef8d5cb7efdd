// Calibration sampling: ktq's seeded pick is the one tests/interop/llmcompressor_gptq.py
// reproduces in Python (so llm-compressor sees the same samples); the values
// below come from that independent port.
#include <gtest/gtest.h>

#include "text/calibration_data.h"

TEST(CalibrationData, SampleIndicesMatchThePythonPort) {
    const std::vector<uint64_t> first = ktq::sample_indices(431, 128, 42);
    ASSERT_EQ(first.size(), 128u);
    const std::vector<uint64_t> want = {4, 6, 7, 18, 27, 31, 35, 39, 40, 42, 48, 56};
    EXPECT_EQ(std::vector<uint64_t>(first.begin(), first.begin() + 12), want);
    EXPECT_EQ(ktq::sample_indices(10, 3, 7), (std::vector<uint64_t>{0, 4, 7}));
}

TEST(CalibrationData, AllCandidatesWhenFewerThanAsked) {
    EXPECT_EQ(ktq::sample_indices(3, 10, 1), (std::vector<uint64_t>{0, 1, 2}));
}

TEST(CalibrationData, DistinctSortedAndSeedDependent) {
    const auto a = ktq::sample_indices(1000, 500, 1), b = ktq::sample_indices(1000, 500, 2);
    EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
    EXPECT_EQ(std::adjacent_find(a.begin(), a.end()), a.end());
    EXPECT_NE(a, b);
}
