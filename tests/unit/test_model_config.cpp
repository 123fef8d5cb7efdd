// config.json in its hub styles, architecture and expert detection on
// crafted checkpoints, and refusal of inputs ktq must not misread.
#include <gtest/gtest.h>

#include "ktq/ktq.h"
#include "reading/model_config.h"
#include "runtime/error.h"
#include "test_support.h"

using namespace ktq_test;

namespace {

struct Opened {
    int status;
    std::string message;
    ktq_model_info info;
    ktq_model *model;
    std::string notice;
};

// Writes config + tensors to a temp folder and opens it.
class CraftedModel {
public:
    CraftedModel(const std::string &config, const std::vector<TensorSpec> &tensors) {
        write_file(dir_ / "config.json", config);
        write_file(dir_ / "model.safetensors", make_safetensors(tensors));
        ktq_error *err = nullptr;
        status = ktq_open_model(&model, dir_.path().c_str(), nullptr, &err);
        message = err ? ktq_error_message(err) : "";
        ktq_error_free(err);
        ktq_model_info_init(&info, KTQ_MODEL_INFO_VERSION);
        if (model) ktq_model_get_info(&info, model, nullptr);
    }
    ~CraftedModel() { ktq_model_free(model); }
    int status;
    std::string message;
    ktq_model *model = nullptr;
    ktq_model_info info;

private:
    TempDir dir_;
};

std::vector<TensorSpec> per_expert_layer(int layer, int experts, const std::string &prefix = "mlp.experts",
                                         bool mixtral = false) {
    std::vector<TensorSpec> t;
    const std::string base = "model.layers." + std::to_string(layer) + "." + prefix + ".";
    for (int e = 0; e < experts; ++e) {
        const std::string p = base + std::to_string(e) + ".";
        t.push_back({p + (mixtral ? "w1" : "gate_proj") + ".weight", "BF16", {8, 4}});
        t.push_back({p + (mixtral ? "w3" : "up_proj") + ".weight", "BF16", {8, 4}});
        t.push_back({p + (mixtral ? "w2" : "down_proj") + ".weight", "BF16", {4, 8}});
    }
    return t;
}

}  // namespace

TEST(ModelConfig, TransformersFiveStyle) {
    auto c = ktq::ModelConfig::parse(R"({"architectures":["Qwen3MoeForCausalLM"],"model_type":"qwen3_moe",
        "num_hidden_layers":3,"hidden_size":256,"num_local_experts":16,"num_experts_per_tok":4,
        "moe_intermediate_size":256,"dtype":"bfloat16","rope_parameters":{"rope_theta":10000.0,"rope_type":"default"}})",
                                     "config.json");
    EXPECT_EQ(c.architecture, "Qwen3MoeForCausalLM");
    EXPECT_EQ(c.num_experts, 16);
    EXPECT_EQ(c.experts_per_token, 4);
    EXPECT_EQ(c.dtype, "bfloat16");
    EXPECT_EQ(c.rope_theta, 10000.0);
}

TEST(ModelConfig, OlderStyle) {
    auto c = ktq::ModelConfig::parse(R"({"model_type":"mixtral","num_hidden_layers":2,"num_local_experts":8,
        "torch_dtype":"float16","rope_theta":1000000.0})", "config.json");
    EXPECT_EQ(c.num_experts, 8);
    EXPECT_EQ(c.dtype, "float16");
    EXPECT_EQ(c.rope_theta, 1000000.0);
}

TEST(ModelConfig, NestedTextConfig) {
    auto c = ktq::ModelConfig::parse(R"({"architectures":["Qwen3_5MoeForConditionalGeneration"],"model_type":"qwen3_5_moe",
        "text_config":{"model_type":"qwen3_5_moe_text","num_hidden_layers":40,"hidden_size":2048,"num_experts":256,
        "num_experts_per_tok":8,"moe_intermediate_size":512,"dtype":"bfloat16"}})", "config.json");
    EXPECT_TRUE(c.has_text_config);
    EXPECT_EQ(c.model_type, "qwen3_5_moe_text");
    EXPECT_EQ(c.num_layers, 40);
    EXPECT_EQ(c.num_experts, 256);
}

TEST(ModelConfig, Fp8QuantizationConfig) {
    auto c = ktq::ModelConfig::parse(R"({"model_type":"deepseek_v3","quantization_config":{"quant_method":"fp8",
        "fmt":"e4m3","weight_block_size":[128,64]}})", "config.json");
    EXPECT_EQ(c.quantization.quant_method, "fp8");
    EXPECT_EQ(c.quantization.block_rows, 128);
    EXPECT_EQ(c.quantization.block_cols, 64);
}

TEST(ModelConfig, WrongTypesAreErrorsNamingTheField) {
    try {
        ktq::ModelConfig::parse(R"({"num_experts":"16"})", "config.json");
        FAIL() << "accepted a string expert count";
    } catch (const ktq::Error &e) {
        EXPECT_EQ(e.status(), KTQ_ERR_FORMAT);
        EXPECT_NE(std::string(e.what()).find("num_experts"), std::string::npos);
    }
    EXPECT_THROW(ktq::ModelConfig::parse(R"({"quantization_config":{"weight_block_size":[0,128]}})", "config.json"),
                 ktq::Error);
    EXPECT_THROW(ktq::ModelConfig::parse("[]", "config.json"), ktq::Error);
}

TEST(Detection, UnknownArchitectureWithPerExpertNamesIsHandled) {
    auto tensors = per_expert_layer(0, 4);
    CraftedModel m(R"({"architectures":["FancyMoeForCausalLM"],"model_type":"fancy_moe","num_hidden_layers":1,
                      "hidden_size":4,"num_experts_per_tok":2})", tensors);
    ASSERT_EQ(m.status, KTQ_OK) << m.message;
    EXPECT_EQ(m.info.family, KTQ_ARCH_GENERIC_MOE);
    EXPECT_EQ(m.info.num_experts, 4);
    EXPECT_EQ(m.info.moe_intermediate_size, 8);
    EXPECT_NE(std::string(m.info.notice).find("not in ktq's table"), std::string::npos);
}

TEST(Detection, MixtralNamesMapW1GateW3UpW2Down) {
    auto tensors = per_expert_layer(0, 2, "block_sparse_moe.experts", true);
    CraftedModel m(R"({"model_type":"mixtral","num_hidden_layers":1,"num_local_experts":2})", tensors);
    ASSERT_EQ(m.status, KTQ_OK) << m.message;
    int64_t r = 0, c = 0;
    ASSERT_EQ(ktq_model_expert_shape(&r, &c, m.model, 0, 1, KTQ_PROJ_DOWN, nullptr), KTQ_OK);
    EXPECT_EQ(r, 4);
    EXPECT_EQ(c, 8);
    // Distinct tensors: w1 (gate) and w3 (up) must not be mixed up.
    std::vector<float> gate(32), up(32), w1(32), w3(32);
    ASSERT_EQ(ktq_model_read_expert(gate.data(), 128, m.model, 0, 1, KTQ_PROJ_GATE, KTQ_DTYPE_F32, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_model_read_expert(up.data(), 128, m.model, 0, 1, KTQ_PROJ_UP, KTQ_DTYPE_F32, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_model_read_tensor(w1.data(), 128, m.model, "model.layers.0.block_sparse_moe.experts.1.w1.weight",
                                    KTQ_DTYPE_F32, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_model_read_tensor(w3.data(), 128, m.model, "model.layers.0.block_sparse_moe.experts.1.w3.weight",
                                    KTQ_DTYPE_F32, nullptr), KTQ_OK);
    EXPECT_EQ(gate, w1);
    EXPECT_EQ(up, w3);
    EXPECT_NE(gate, up);
}

TEST(Detection, ConfigExpertCountMustMatchTensors) {
    CraftedModel m(R"({"model_type":"qwen3_moe","num_hidden_layers":1,"num_experts":8})", per_expert_layer(0, 4));
    EXPECT_EQ(m.status, KTQ_ERR_FORMAT);
    EXPECT_NE(m.message.find("config.json says 8 routed experts but layer 0 has 4"), std::string::npos) << m.message;
}

TEST(Detection, MissingExpertProjectionIsNamed) {
    auto tensors = per_expert_layer(0, 3);
    tensors.erase(tensors.begin() + 4);  // expert 1 up_proj
    CraftedModel m(R"({"model_type":"qwen3_moe","num_hidden_layers":1})", tensors);
    EXPECT_EQ(m.status, KTQ_ERR_FORMAT);
    EXPECT_NE(m.message.find("expert 1 has no up projection"), std::string::npos) << m.message;
}

TEST(Detection, AlreadyQuantizedInputsAreRefused) {
    CraftedModel ct(R"({"model_type":"qwen3_moe","quantization_config":{"quant_method":"compressed-tensors"}})",
                    {{"model.layers.0.mlp.down_proj.weight_packed", "I32", {4, 1}}});
    EXPECT_EQ(ct.status, KTQ_ERR_UNSUPPORTED);
    EXPECT_NE(ct.message.find("compressed-tensors"), std::string::npos) << ct.message;

    CraftedModel gptq(R"({"model_type":"llama"})", {{"model.layers.0.mlp.down_proj.qweight", "I32", {4, 1}}});
    EXPECT_EQ(gptq.status, KTQ_ERR_UNSUPPORTED);
    EXPECT_NE(gptq.message.find("model.layers.0.mlp.down_proj.qweight"), std::string::npos) << gptq.message;
    EXPECT_NE(gptq.message.find("model.safetensors"), std::string::npos) << gptq.message;
}

TEST(Detection, Fp8ScaleOfWrongShapeIsNamed) {
    CraftedModel m(R"({"model_type":"deepseek_v3","quantization_config":{"quant_method":"fp8","weight_block_size":[128,128]}})",
                   {{"model.layers.0.self_attn.o_proj.weight", "F8_E4M3", {256, 300}},
                    {"model.layers.0.self_attn.o_proj.weight_scale_inv", "F32", {2, 2}}});
    EXPECT_EQ(m.status, KTQ_ERR_FORMAT);
    EXPECT_NE(m.message.find("model.layers.0.self_attn.o_proj.weight_scale_inv"), std::string::npos) << m.message;
    EXPECT_NE(m.message.find("expected [2, 3]"), std::string::npos) << m.message;
}

TEST(Detection, Fp8WithoutScaleIsRefusedWhenConfigSaysBlockFp8) {
    CraftedModel m(R"({"model_type":"deepseek_v3","quantization_config":{"quant_method":"fp8","weight_block_size":[128,128]}})",
                   {{"model.layers.0.self_attn.o_proj.weight", "F8_E4M3", {4, 4}}});
    EXPECT_EQ(m.status, KTQ_ERR_FORMAT);
    EXPECT_NE(m.message.find("no 'model.layers.0.self_attn.o_proj.weight_scale_inv'"), std::string::npos) << m.message;
}

TEST(Detection, StrayFp8TensorWithScaleInABf16Model) {
    // Regression (review): without an fp8 quantization_config the block size
    // stayed 0 and opening divided by zero.
    CraftedModel m(R"({"model_type":"llama","num_hidden_layers":1})",
                   {{"model.layers.0.mlp.down_proj.weight", "BF16", {4, 8}},
                    {"model.layers.0.self_attn.o_proj.weight", "F8_E4M3", {4, 4}},
                    {"model.layers.0.self_attn.o_proj.weight_scale_inv", "F32", {1, 1}}});
    ASSERT_EQ(m.status, KTQ_OK) << m.message;
    EXPECT_EQ(m.info.fp8_block_rows, 128);
    std::vector<float> w(16);
    EXPECT_EQ(ktq_model_read_tensor(w.data(), 64, m.model, "model.layers.0.self_attn.o_proj.weight", KTQ_DTYPE_F32,
                                    nullptr),
              KTQ_OK);
}

TEST(Detection, HostileIndicesAreRefusedBeforeAllocating) {
    // Regression (review): a huge layer or expert index sized vectors by it.
    CraftedModel layer(R"({"model_type":"llama"})", {{"model.layers.0.mlp.down_proj.weight", "BF16", {4, 8}},
                                                      {"model.layers.999999999.mlp.down_proj.weight", "BF16", {4, 8}}});
    EXPECT_EQ(layer.status, KTQ_ERR_FORMAT);
    EXPECT_NE(layer.message.find("skip decoder layers"), std::string::npos) << layer.message;
    auto tensors = per_expert_layer(0, 1);
    for (const char *p : {"gate_proj", "up_proj", "down_proj"})
        tensors.push_back({std::string("model.layers.0.mlp.experts.999999999.") + p + ".weight", "BF16", {8, 4}});
    CraftedModel expert(R"({"model_type":"qwen3_moe","num_hidden_layers":1})", tensors);
    EXPECT_EQ(expert.status, KTQ_ERR_FORMAT);
    EXPECT_NE(expert.message.find("expert 1 is missing"), std::string::npos) << expert.message;
    CraftedModel config(R"({"model_type":"llama","num_hidden_layers":1073741824})",
                        {{"model.layers.0.mlp.down_proj.weight", "BF16", {4, 8}}});
    EXPECT_EQ(config.status, KTQ_ERR_FORMAT);
    EXPECT_NE(config.message.find("config.json says 1073741824 layers"), std::string::npos) << config.message;
}
