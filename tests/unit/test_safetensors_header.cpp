// Crafted bad safetensors files: each must be refused with a specific status
// and a message that names the file and, where there is one, the tensor.
#include <gtest/gtest.h>

#include <string>

#include "ktq/ktq.h"
#include "test_support.h"

using namespace ktq_test;

namespace {

struct Outcome {
    int status;
    std::string message;
};

Outcome open_with(const std::string &file_bytes) {
    TempDir dir;
    write_file(dir / "config.json", dense_config());
    write_file(dir / "model.safetensors", file_bytes);
    ktq_model *model = nullptr;
    ktq_error *err = nullptr;
    int st = ktq_open_model(&model, dir.path().c_str(), nullptr, &err);
    Outcome o{st, err ? ktq_error_message(err) : ""};
    EXPECT_EQ(st == KTQ_OK, model != nullptr);
    EXPECT_EQ(st != KTQ_OK, err != nullptr);
    if (err) EXPECT_EQ(ktq_error_status(err), st);
    ktq_error_free(err);
    ktq_model_free(model);
    return o;
}

std::string one_tensor(const std::string &dtype, const std::string &shape, uint64_t begin, uint64_t end) {
    return R"({"w":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":[)" + std::to_string(begin) +
           "," + std::to_string(end) + "]}}";
}

void expect_refused(const Outcome &o, int status, const std::string &needle) {
    EXPECT_EQ(o.status, status) << o.message;
    EXPECT_NE(o.message.find("model.safetensors"), std::string::npos) << o.message;
    EXPECT_NE(o.message.find(needle), std::string::npos) << "message '" << o.message << "' lacks '" << needle << "'";
}

}  // namespace

TEST(SafetensorsHeader, AcceptsAValidFile) {
    Outcome o = open_with(safetensors_bytes(one_tensor("BF16", "[2,2]", 0, 8), std::string(8, '\0')));
    EXPECT_EQ(o.status, KTQ_OK) << o.message;
}

TEST(SafetensorsHeader, FileShorterThanLengthPrefix) {
    expect_refused(open_with("abc"), KTQ_ERR_FORMAT, "truncated");
}

TEST(SafetensorsHeader, HeaderLengthPastEndOfFile) {
    std::string bytes = safetensors_bytes(one_tensor("BF16", "[2,2]", 0, 8), std::string(8, '\0'));
    bytes.resize(40);  // cut inside the header
    expect_refused(open_with(bytes), KTQ_ERR_FORMAT, "runs past the end of the file");
}

TEST(SafetensorsHeader, GiantHeaderLength) {
    std::string bytes(8, '\xff');
    bytes += "{}";
    expect_refused(open_with(bytes), KTQ_ERR_FORMAT, "exceeds the limit");
}

TEST(SafetensorsHeader, NotJson) {
    expect_refused(open_with(safetensors_bytes("{not json", "")), KTQ_ERR_FORMAT, "not valid JSON");
}

TEST(SafetensorsHeader, NotAnObject) {
    expect_refused(open_with(safetensors_bytes("[1,2]", "")), KTQ_ERR_FORMAT, "not a JSON object");
}

TEST(SafetensorsHeader, UnknownDtype) {
    expect_refused(open_with(safetensors_bytes(one_tensor("Q4_K", "[2]", 0, 2), "xx")), KTQ_ERR_UNSUPPORTED,
                   "tensor 'w'");
}

TEST(SafetensorsHeader, ByteLengthDoesNotMatchShape) {
    expect_refused(open_with(safetensors_bytes(one_tensor("BF16", "[2,3]", 0, 8), std::string(8, '\0'))),
                   KTQ_ERR_FORMAT, "tensor 'w': byte length 8 does not match");
}

TEST(SafetensorsHeader, OffsetsPastTheData) {
    expect_refused(open_with(safetensors_bytes(one_tensor("BF16", "[2,2]", 0, 8), std::string(4, '\0'))),
                   KTQ_ERR_FORMAT, "tensor 'w': data_offsets [0, 8] run past the end");
}

TEST(SafetensorsHeader, ReversedOffsets) {
    expect_refused(open_with(safetensors_bytes(one_tensor("BF16", "[0]", 8, 0), std::string(8, '\0'))),
                   KTQ_ERR_FORMAT, "tensor 'w': data_offsets [8, 0] are reversed");
}

TEST(SafetensorsHeader, NegativeOrFractionalShape) {
    expect_refused(open_with(safetensors_bytes(one_tensor("BF16", "[-2,2]", 0, 8), std::string(8, '\0'))),
                   KTQ_ERR_FORMAT, "tensor 'w': shape entry -2");
    expect_refused(open_with(safetensors_bytes(one_tensor("BF16", "[1.5]", 0, 2), std::string(2, '\0'))),
                   KTQ_ERR_FORMAT, "tensor 'w': shape entry 1.5");
}

TEST(SafetensorsHeader, ShapeOverflow) {
    expect_refused(open_with(safetensors_bytes(one_tensor("F32", "[4294967296,4294967296,16]", 0, 8),
                                               std::string(8, '\0'))),
                   KTQ_ERR_FORMAT, "overflows");
}

TEST(SafetensorsHeader, OverlappingTensors) {
    std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
    expect_refused(open_with(safetensors_bytes(header, std::string(12, '\0'))), KTQ_ERR_FORMAT,
                   "tensor 'b': data overlaps tensor 'a'");
}

TEST(SafetensorsHeader, DuplicateNames) {
    std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
    expect_refused(open_with(safetensors_bytes(header, std::string(8, '\0'))), KTQ_ERR_FORMAT,
                   "tensor 'a': appears twice");
}

TEST(SafetensorsHeader, MissingFields) {
    expect_refused(open_with(safetensors_bytes(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0'))),
                   KTQ_ERR_FORMAT, "tensor 'w': missing or non-string dtype");
    expect_refused(open_with(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1]}})", std::string(4, '\0'))),
                   KTQ_ERR_FORMAT, "tensor 'w': data_offsets");
    expect_refused(open_with(safetensors_bytes(R"({"__metadata__":{"format":1}})", "")), KTQ_ERR_FORMAT,
                   "__metadata__");
}

TEST(SafetensorsHeader, TooManyDimensions) {
    expect_refused(open_with(safetensors_bytes(one_tensor("F32", "[1,1,1,1,1,1,1,1,1]", 0, 4), std::string(4, '\0'))),
                   KTQ_ERR_FORMAT, "dimensions");
}

TEST(SafetensorsHeader, OverlapHiddenBehindAnEmptyTensor) {
    // Regression (review): only neighbours were compared, so an empty tensor
    // between two overlapping ones hid the overlap.
    std::string header = R"({"a":{"dtype":"U8","shape":[100],"data_offsets":[0,100]},)"
                         R"("b":{"dtype":"U8","shape":[0],"data_offsets":[10,10]},)"
                         R"("c":{"dtype":"U8","shape":[10],"data_offsets":[20,30]}})";
    expect_refused(open_with(safetensors_bytes(header, std::string(100, '\0'))), KTQ_ERR_FORMAT,
                   "tensor 'c': data overlaps tensor 'a'");
}
