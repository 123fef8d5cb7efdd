// ggml block quantizers against golden vectors made by gguf-py
// (tests/golden/make_ggml_golden.py): quantized bytes must be identical, and
// dequantization must give the same floats.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ktq/ktq.h"
#include "quant/ggml_blocks.h"
#include "quant/ggml_fit.h"
#include "reading/dtype.h"
#include "test_support.h"

using ktq_test::b64decode;

namespace {


nlohmann::json golden(const char *file) {
    std::ifstream in(std::string(KTQ_GOLDEN_DIR "/") + file);
    std::stringstream ss;
    ss << in.rdbuf();
    return nlohmann::json::parse(ss.str());
}

// Every type of a golden file: quantized bytes identical, dequantized floats
// identical. Returns the number of types checked.
int check_golden(const char *file, size_t values) {
    const auto g = golden(file);
    const std::string raw = b64decode(g["input_f32"].get<std::string>());
    std::vector<float> x(raw.size() / 4);
    std::memcpy(x.data(), raw.data(), raw.size());
    EXPECT_EQ(x.size(), values);
    int types = 0;
    for (auto it = g["types"].begin(); it != g["types"].end(); ++it, ++types) {
        const auto type = static_cast<ktq_ggml_type>(it.value()["id"].get<int>());
        EXPECT_STREQ(ktq_ggml_type_name(type), it.key().c_str());
        const std::string want = b64decode(it.value()["quantized"].get<std::string>());
        std::vector<uint8_t> got(x.size() / ktq_ggml_block_size(type) * ktq_ggml_type_size(type));
        EXPECT_EQ(got.size(), want.size()) << it.key();
        if (got.size() != want.size()) continue;
        EXPECT_EQ(ktq_quantize_tensor(got.data(), got.size(), x.data(), x.size(), type, nullptr), KTQ_OK);
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < got.size(); ++i)
            if (got[i] != static_cast<uint8_t>(want[i]) && bad++ == 0) first = i;
        EXPECT_EQ(bad, 0u) << it.key() << ": " << bad << " bytes differ, the first " << first << " (block "
                           << first / ktq_ggml_type_size(type) << ")";
        const std::string deq = b64decode(it.value()["dequantized_f32"].get<std::string>());
        std::vector<float> y(x.size()), y_want(x.size());
        std::memcpy(y_want.data(), deq.data(), deq.size());
        std::vector<uint8_t> blocks(want.begin(), want.end());  // dequantize ggml's own blocks
        EXPECT_EQ(ktq_dequantize_tensor(y.data(), y.size(), blocks.data(), blocks.size(), type, nullptr), KTQ_OK);
        for (size_t i = 0; i < y.size(); ++i)
            if (!(y[i] == y_want[i] || (std::isnan(y[i]) && std::isnan(y_want[i])))) {
                ADD_FAILURE() << it.key() << " value " << i << ": " << y[i] << " vs " << y_want[i];
                break;
            }
    }
    return types;
}

}  // namespace

TEST(GgmlBlocks, IdenticalToGgufPyGoldenVectors) {
    for (bool scalar : {false, true}) {  // Q8_0 has an AVX2 path too
        ktq::ggml_fit::set_force_scalar(scalar);
        EXPECT_EQ(check_golden("ggml_blocks.json", 3456), 8) << (scalar ? "scalar path" : "default path");
    }
    ktq::ggml_fit::set_force_scalar(false);
}

// K-quants against ggml's own reference quantizers (make_kquant_golden.py),
// on the eight-lane AVX2 path (where the CPU has it) and on the scalar one.
TEST(GgmlBlocks, KQuantsIdenticalToGgmlReference) {
    for (bool scalar : {false, true}) {
        ktq::ggml_fit::set_force_scalar(scalar);
        EXPECT_EQ(check_golden("ggml_kquants.json", 16128), 5) << (scalar ? "scalar path" : "default path");
    }
    ktq::ggml_fit::set_force_scalar(false);
}

// The imatrix path against ggml's own quantize_<type>(..., quant_weights)
// (make_importance_golden.py): same bytes for every row and type.
TEST(GgmlBlocks, ImportanceQuantizersIdenticalToGgml) {
    const auto g = golden("ggml_importance.json");
    const size_t n_per_row = g["n_per_row"].get<size_t>(), rows = g["rows"].get<size_t>();
    const std::string xr = b64decode(g["input_f32"].get<std::string>());
    const std::string wr = b64decode(g["importance_f32"].get<std::string>());
    std::vector<float> x(xr.size() / 4), w(wr.size() / 4);
    std::memcpy(x.data(), xr.data(), xr.size());
    std::memcpy(w.data(), wr.data(), wr.size());
    ASSERT_EQ(x.size(), rows * n_per_row);
    ASSERT_EQ(w.size(), rows * n_per_row);
    int types = 0;
    for (bool scalar : {false, true})
    for (auto it = g["types"].begin(); it != g["types"].end(); ++it, types += !scalar) {
        ktq::ggml_fit::set_force_scalar(scalar);
        const auto type = static_cast<ktq_ggml_type>(it.value()["id"].get<int>());
        const std::string want = b64decode(it.value()["quantized"].get<std::string>());
        const size_t row_bytes = n_per_row / ktq_ggml_block_size(type) * ktq_ggml_type_size(type);
        ASSERT_EQ(want.size(), rows * row_bytes) << it.key();
        std::vector<uint8_t> got(row_bytes), plain(row_bytes);
        size_t bad = 0, same_as_plain = 0;
        for (size_t r = 0; r < rows; ++r) {
            ASSERT_EQ(ktq_quantize_rows(got.data(), got.size(), x.data() + r * n_per_row, 1, n_per_row,
                                        w.data() + r * n_per_row, type, nullptr), KTQ_OK);
            for (size_t i = 0; i < row_bytes; ++i)
                if (got[i] != static_cast<uint8_t>(want[r * row_bytes + i]) && bad++ == 0)
                    ADD_FAILURE() << it.key() << " row " << r << ": first difference at byte " << i << " (block "
                                  << i / ktq_ggml_type_size(type) << ")";
            ASSERT_EQ(ktq_quantize_rows(plain.data(), plain.size(), x.data() + r * n_per_row, 1, n_per_row, nullptr,
                                        type, nullptr), KTQ_OK);
            same_as_plain += plain == got;
        }
        EXPECT_EQ(bad, 0u) << it.key() << ": " << bad << " bytes differ";
        // The importance path is a different quantizer: it must not just be the reference one.
        EXPECT_LT(same_as_plain, rows) << it.key();
    }
    ktq::ggml_fit::set_force_scalar(false);
    EXPECT_EQ(types, 9);
    // Q8_0 has no importance path in ggml: the reference bytes either way.
    std::vector<uint8_t> a(34 * 72), b(34 * 72);
    ASSERT_EQ(ktq_quantize_rows(a.data(), a.size(), x.data(), 1, n_per_row, w.data(), KTQ_GGML_Q8_0, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_quantize_tensor(b.data(), b.size(), x.data(), n_per_row, KTQ_GGML_Q8_0, nullptr), KTQ_OK);
    EXPECT_EQ(a, b);
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_quantize_rows(a.data(), 10, x.data(), 1, n_per_row, w.data(), KTQ_GGML_Q4_K, &err),
              KTQ_ERR_BUFFER_TOO_SMALL);
    ktq_error_free(err);
}

TEST(GgmlBlocks, F16RoundingMatchesTheDefinition) {
    EXPECT_EQ(ktq::f32_to_f16(1.0f), 0x3c00);
    EXPECT_EQ(ktq::f32_to_f16(65504.0f), 0x7bff);
    EXPECT_EQ(ktq::f32_to_f16(65520.0f), 0x7c00);          // the tie above the largest half goes to infinity
    EXPECT_EQ(ktq::f32_to_f16(65519.0f), 0x7bff);
    EXPECT_EQ(ktq::f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
    EXPECT_EQ(ktq::f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even: zero
    EXPECT_EQ(ktq::f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: tie to even 2
    EXPECT_EQ(ktq::f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie to even
    EXPECT_EQ(ktq::f32_to_f16(-2.0f), 0xc000);
    for (uint32_t h = 0; h < 0x7c00; ++h)  // every finite half round-trips
        ASSERT_EQ(ktq::f32_to_f16(ktq::f16_to_f32(static_cast<uint16_t>(h))), h) << h;
}

TEST(GgmlBlocks, ErrorsNameTheTypeAndSizes) {
    float x[33] = {};
    uint8_t buf[64];
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_quantize_tensor(buf, sizeof buf, x, 33, KTQ_GGML_Q4_0, &err), KTQ_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ktq_error_message(err)).find("Q4_0 needs a multiple of 32"), std::string::npos);
    ktq_error_free(err);
    EXPECT_EQ(ktq_quantize_tensor(buf, 10, x, 32, KTQ_GGML_Q8_0, &err), KTQ_ERR_BUFFER_TOO_SMALL);
    ktq_error_free(err);
    EXPECT_EQ(ktq_quantize_tensor(buf, sizeof buf, x, 32, static_cast<ktq_ggml_type>(16), &err), KTQ_ERR_UNSUPPORTED);
    ktq_error_free(err);
    EXPECT_EQ(ktq_ggml_block_size(static_cast<ktq_ggml_type>(16)), 0u);
    // Rows that end mid-block: 2 rows of 128 make one Q4_K super-block in total, but neither row is one
    // (each row is quantized on its own, so nothing would be written).
    std::vector<float> rows(256, 0.5f), importance(128, 1.0f);
    std::vector<uint8_t> out(144, 0xAA);
    EXPECT_EQ(ktq_quantize_rows(out.data(), out.size(), rows.data(), 2, 128, importance.data(), KTQ_GGML_Q4_K, &err),
              KTQ_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ktq_error_message(err)).find("rows of 128 values are not whole Q4_K blocks of 256"),
              std::string::npos) << ktq_error_message(err);
    ktq_error_free(err);
}
