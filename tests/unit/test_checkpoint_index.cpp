// Sharded checkpoints: the index must stay inside the model folder, every
// shard must exist, every listed tensor must be in its shard.
#include <gtest/gtest.h>

#include "ktq/ktq.h"
#include "reading/checkpoint.h"
#include "test_support.h"

using namespace ktq_test;

namespace {

std::string tensor_file(const std::string &name) {
    return safetensors_bytes(R"({")" + name + R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                             std::string(4, '\0'));
}

std::pair<int, std::string> open_dir(const std::string &dir) {
    ktq_model *model = nullptr;
    ktq_error *err = nullptr;
    int st = ktq_open_model(&model, dir.c_str(), nullptr, &err);
    std::string msg = err ? ktq_error_message(err) : "";
    ktq_error_free(err);
    ktq_model_free(model);
    return {st, msg};
}

}  // namespace

TEST(CheckpointIndex, OpensShardsListedByTheIndex) {
    TempDir dir;
    write_file(dir / "config.json", dense_config());
    write_file(dir / "a.safetensors", tensor_file("x"));
    write_file(dir / "b.safetensors", tensor_file("y"));
    write_file(dir / "model.safetensors.index.json",
               R"({"metadata":{},"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})");
    ktq::Checkpoint ckpt(dir.path(), 1 << 20);
    EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(ckpt.files().size(), 2u);
    EXPECT_EQ(ckpt.at("y").file->display_name(), "b.safetensors");
}

TEST(CheckpointIndex, RefusesPathsLeavingTheFolder) {
    for (const char *bad : {"../a.safetensors", "/etc/passwd", "sub/../../a.safetensors", "", "a\\\\b"}) {
        TempDir dir;
        write_file(dir / "config.json", dense_config());
        write_file(dir / "model.safetensors.index.json",
                   std::string(R"({"weight_map":{"x":")") + bad + R"("}})");
        auto [st, msg] = open_dir(dir.path());
        EXPECT_EQ(st, KTQ_ERR_FORMAT) << bad;
        EXPECT_NE(msg.find("tensor 'x'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("model.safetensors.index.json"), std::string::npos) << msg;
    }
}

TEST(CheckpointIndex, MissingShardIsNamed) {
    TempDir dir;
    write_file(dir / "config.json", dense_config());
    write_file(dir / "a.safetensors", tensor_file("x"));
    write_file(dir / "model.safetensors.index.json",
               R"({"weight_map":{"x":"a.safetensors","y":"model-00002-of-00002.safetensors"}})");
    auto [st, msg] = open_dir(dir.path());
    EXPECT_EQ(st, KTQ_ERR_NOT_FOUND);
    EXPECT_NE(msg.find("model-00002-of-00002.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("tensor 'y'"), std::string::npos) << msg;
}

TEST(CheckpointIndex, TensorNotInItsShard) {
    TempDir dir;
    write_file(dir / "config.json", dense_config());
    write_file(dir / "a.safetensors", tensor_file("x"));
    write_file(dir / "model.safetensors.index.json", R"({"weight_map":{"x":"a.safetensors","z":"a.safetensors"}})");
    auto [st, msg] = open_dir(dir.path());
    EXPECT_EQ(st, KTQ_ERR_FORMAT);
    EXPECT_NE(msg.find("tensor 'z'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("a.safetensors"), std::string::npos) << msg;
}

TEST(CheckpointIndex, BadIndexJson) {
    TempDir dir;
    write_file(dir / "config.json", dense_config());
    write_file(dir / "model.safetensors.index.json", R"({"weight_map": [1,2]})");
    auto [st, msg] = open_dir(dir.path());
    EXPECT_EQ(st, KTQ_ERR_FORMAT);
    EXPECT_NE(msg.find("weight_map"), std::string::npos) << msg;
}

TEST(CheckpointIndex, FolderWithoutWeights) {
    TempDir dir;
    write_file(dir / "config.json", dense_config());
    auto [st, msg] = open_dir(dir.path());
    EXPECT_EQ(st, KTQ_ERR_NOT_FOUND);
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
}

TEST(CheckpointIndex, SafeRelativePaths) {
    EXPECT_TRUE(ktq::is_safe_relative_path("model-00001-of-00002.safetensors"));
    EXPECT_TRUE(ktq::is_safe_relative_path("sub/model.safetensors"));
    EXPECT_FALSE(ktq::is_safe_relative_path("../x"));
    EXPECT_FALSE(ktq::is_safe_relative_path("/x"));
    EXPECT_FALSE(ktq::is_safe_relative_path("a//b"));
    EXPECT_FALSE(ktq::is_safe_relative_path("a/"));
}
