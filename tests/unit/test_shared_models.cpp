// The five shared trained checkpoints (../shared/models) and a fused-experts
// fixture made from tiny-qwen3-moe: detection, expert access, reading.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "ktq/ktq.h"
#include "reading/model.h"
#include "test_support.h"
#include "writers/safetensors_writer.h"

using namespace ktq_test;

namespace {

struct Expected {
    const char *name;
    ktq_arch_family family;
    int layers, hidden, experts, top_k, first_dense, shared, moe_intermediate;
    ktq_dtype dtype;
    ktq_expert_storage storage;
    int block;
};

const Expected kModels[] = {
    {"tiny-qwen3-moe", KTQ_ARCH_QWEN3_MOE, 3, 256, 16, 4, 0, 0, 256, KTQ_DTYPE_BF16, KTQ_EXPERTS_PER_EXPERT, 0},
    {"tiny-mixtral", KTQ_ARCH_MIXTRAL, 2, 256, 8, 2, 0, 0, 512, KTQ_DTYPE_F16, KTQ_EXPERTS_PER_EXPERT, 0},
    {"tiny-llama", KTQ_ARCH_LLAMA, 4, 256, 0, 0, 4, 0, 0, KTQ_DTYPE_BF16, KTQ_EXPERTS_NONE, 0},
    {"tiny-deepseek-v3", KTQ_ARCH_DEEPSEEK_V3, 3, 256, 16, 4, 1, 1, 256, KTQ_DTYPE_BF16, KTQ_EXPERTS_PER_EXPERT, 0},
    {"tiny-deepseek-v3-fp8", KTQ_ARCH_DEEPSEEK_V3, 3, 256, 16, 4, 1, 1, 256, KTQ_DTYPE_F8_E4M3,
     KTQ_EXPERTS_PER_EXPERT, 128},
};

// Test names and failure messages show the model, not raw bytes.
void PrintTo(const Expected &e, std::ostream *os) { *os << e.name; }

struct ModelDeleter {
    void operator()(ktq_model *m) const { ktq_model_free(m); }
};
using ModelPtr = std::unique_ptr<ktq_model, ModelDeleter>;

ModelPtr open_or_fail(const std::string &path) {
    ktq_model *m = nullptr;
    ktq_error *err = nullptr;
    int st = ktq_open_model(&m, path.c_str(), nullptr, &err);
    EXPECT_EQ(st, KTQ_OK) << (err ? ktq_error_message(err) : "");
    ktq_error_free(err);
    return ModelPtr(m);
}

ktq_model_info info_of(const ktq_model *m) {
    ktq_model_info info;
    ktq_model_info_init(&info, KTQ_MODEL_INFO_VERSION);
    EXPECT_EQ(ktq_model_get_info(&info, m, nullptr), KTQ_OK);
    return info;
}

std::vector<uint16_t> read_expert_bf16(const ktq_model *m, int layer, int expert, ktq_expert_proj proj) {
    int64_t rows = 0, cols = 0;
    EXPECT_EQ(ktq_model_expert_shape(&rows, &cols, m, layer, expert, proj, nullptr), KTQ_OK);
    std::vector<uint16_t> out(static_cast<size_t>(rows * cols));
    EXPECT_EQ(ktq_model_read_expert(out.data(), out.size() * 2, m, layer, expert, proj, KTQ_DTYPE_BF16, nullptr),
              KTQ_OK);
    return out;
}

// Rewrites a per-expert checkpoint the way transformers 5 stores experts:
// experts.gate_up_proj [E, 2I, H] (gate rows first) and experts.down_proj
// [E, H, I], everything in BF16. Uses the library's own reader and writer.
void make_fused_fixture(const std::string &src, const std::string &dst) {
    ktq_open_options opts;
    ktq_open_options_init(&opts, KTQ_OPEN_OPTIONS_VERSION);
    ktq::Model model(src, opts);
    const auto &arch = model.arch();
    std::vector<ktq::OutputTensor> plan;
    std::vector<std::vector<uint16_t>> data;
    for (const auto &name : model.checkpoint().names()) {
        if (name.find(".mlp.experts.") != std::string::npos) continue;
        ktq::MatrixView v = model.matrix(name);
        plan.push_back({name, KTQ_DTYPE_BF16, model.checkpoint().at(name).entry->shape, name, -1});
        data.emplace_back(v.rows * v.cols);
        model.read(v, KTQ_DTYPE_BF16, data.back().data());
    }
    for (size_t l = 0; l < arch.layers.size(); ++l) {
        const int E = arch.layers[l].num_experts;
        const std::string base = "model.layers." + std::to_string(l) + ".mlp.experts.";
        std::vector<uint16_t> gate_up, down;
        for (int e = 0; e < E; ++e) {
            for (ktq_expert_proj p : {KTQ_PROJ_GATE, KTQ_PROJ_UP}) {
                ktq::MatrixView v = model.expert(static_cast<int>(l), e, p);
                std::vector<uint16_t> m(v.rows * v.cols);
                model.read(v, KTQ_DTYPE_BF16, m.data());
                gate_up.insert(gate_up.end(), m.begin(), m.end());
            }
            ktq::MatrixView v = model.expert(static_cast<int>(l), e, KTQ_PROJ_DOWN);
            std::vector<uint16_t> m(v.rows * v.cols);
            model.read(v, KTQ_DTYPE_BF16, m.data());
            down.insert(down.end(), m.begin(), m.end());
        }
        const int64_t I = arch.layers[l].intermediate, H = model.config().hidden_size;
        plan.push_back({base + "gate_up_proj", KTQ_DTYPE_BF16, {E, 2 * I, H}, "", static_cast<int>(l)});
        data.push_back(gate_up);
        plan.push_back({base + "down_proj", KTQ_DTYPE_BF16, {E, H, I}, "", static_cast<int>(l)});
        data.push_back(down);
    }
    std::vector<const ktq::OutputTensor *> ptrs;
    for (const auto &t : plan) ptrs.push_back(&t);
    ktq::ShardedSafetensorsWriter writer(dst, ptrs, 1ull << 40);
    for (size_t i = 0; i < plan.size(); ++i) writer.write(plan[i], 0, data[i].data(), data[i].size() * 2);
    writer.commit();
    write_file(dst + "/config.json", read_file(src + "/config.json"));
}

}  // namespace

class SharedModel : public ::testing::TestWithParam<Expected> {};

TEST_P(SharedModel, IsDescribedCorrectly) {
    const Expected &x = GetParam();
    std::string path = shared_model(x.name);
    KTQ_REQUIRE_SHARED(path);
    ModelPtr m = open_or_fail(path);
    ASSERT_TRUE(m);
    ktq_model_info info = info_of(m.get());
    EXPECT_EQ(info.family, x.family);
    EXPECT_EQ(info.num_layers, x.layers);
    EXPECT_EQ(info.hidden_size, x.hidden);
    EXPECT_EQ(info.num_experts, x.experts);
    EXPECT_EQ(info.experts_per_token, x.top_k);
    EXPECT_EQ(info.first_dense_layers, x.first_dense);
    EXPECT_EQ(info.num_moe_layers, x.experts ? x.layers - x.first_dense : 0);
    EXPECT_EQ(info.num_shared_experts, x.shared);
    EXPECT_EQ(info.moe_intermediate_size, x.moe_intermediate);
    EXPECT_EQ(info.source_dtype, x.dtype);
    EXPECT_EQ(info.expert_storage, x.storage);
    EXPECT_EQ(info.fp8_block_rows, x.block);
    EXPECT_EQ(info.vocab_size, 4096);
    EXPECT_STREQ(info.notice, "");
    for (int l = 0; l < x.layers; ++l) EXPECT_EQ(ktq_model_layer_is_moe(m.get(), l), x.experts && l >= x.first_dense);
}

TEST_P(SharedModel, ExpertAccessorReturnsTheExpertTensor) {
    const Expected &x = GetParam();
    std::string path = shared_model(x.name);
    KTQ_REQUIRE_SHARED(path);
    ModelPtr m = open_or_fail(path);
    if (!x.experts) {
        int64_t r = 0, c = 0;
        EXPECT_EQ(ktq_model_expert_shape(&r, &c, m.get(), 0, 0, KTQ_PROJ_GATE, nullptr), KTQ_ERR_NOT_FOUND);
        return;
    }
    const bool mixtral = x.family == KTQ_ARCH_MIXTRAL;
    const int layer = x.first_dense, expert = x.experts - 1;
    const std::string base = "model.layers." + std::to_string(layer) +
                             (mixtral ? ".block_sparse_moe.experts." : ".mlp.experts.") + std::to_string(expert) + ".";
    const char *names[3] = {mixtral ? "w1" : "gate_proj", mixtral ? "w3" : "up_proj", mixtral ? "w2" : "down_proj"};
    for (int p = 0; p < 3; ++p) {
        auto via_expert = read_expert_bf16(m.get(), layer, expert, static_cast<ktq_expert_proj>(p));
        std::vector<uint16_t> via_tensor(via_expert.size());
        ASSERT_EQ(ktq_model_read_tensor(via_tensor.data(), via_tensor.size() * 2, m.get(),
                                        (base + names[p] + ".weight").c_str(), KTQ_DTYPE_BF16, nullptr),
                  KTQ_OK);
        EXPECT_EQ(via_expert, via_tensor) << names[p];
    }
}

INSTANTIATE_TEST_SUITE_P(All, SharedModel, ::testing::ValuesIn(kModels),
                         [](const auto &info) {
                             std::string n = info.param.name;
                             for (char &c : n)
                                 if (c == '-') c = '_';
                             return n;
                         });

TEST(FusedExperts, FixtureGivesIdenticalExpertMatrices) {
    std::string path = shared_model("tiny-qwen3-moe");
    KTQ_REQUIRE_SHARED(path);
    TempDir fused;
    make_fused_fixture(path, fused.path());
    ModelPtr a = open_or_fail(path), b = open_or_fail(fused.path());
    ASSERT_TRUE(a && b);
    ktq_model_info ia = info_of(a.get()), ib = info_of(b.get());
    EXPECT_EQ(ib.expert_storage, KTQ_EXPERTS_FUSED);
    EXPECT_EQ(ib.family, ia.family);
    EXPECT_EQ(ib.num_experts, ia.num_experts);
    EXPECT_EQ(ib.moe_intermediate_size, ia.moe_intermediate_size);
    EXPECT_EQ(ib.first_dense_layers, ia.first_dense_layers);
    EXPECT_EQ(ib.num_moe_layers, ia.num_moe_layers);
    size_t compared = 0;
    for (int l = 0; l < ia.num_layers; ++l)
        for (int e = 0; e < ia.num_experts; ++e)
            for (int p = 0; p < 3; ++p) {
                auto x = read_expert_bf16(a.get(), l, e, static_cast<ktq_expert_proj>(p));
                auto y = read_expert_bf16(b.get(), l, e, static_cast<ktq_expert_proj>(p));
                ASSERT_EQ(x, y) << "layer " << l << " expert " << e << " proj " << p;
                ++compared;
            }
    EXPECT_EQ(compared, static_cast<size_t>(3 * 16 * 3));
}

TEST(Fp8, ReadsAsF32AndBf16Consistently) {
    std::string path = shared_model("tiny-deepseek-v3-fp8");
    KTQ_REQUIRE_SHARED(path);
    ModelPtr m = open_or_fail(path);
    const char *name = "model.layers.0.mlp.down_proj.weight";  // [256, 768]: 2x6 blocks
    std::vector<float> f(256 * 768);
    std::vector<uint16_t> h(256 * 768);
    ASSERT_EQ(ktq_model_read_tensor(f.data(), f.size() * 4, m.get(), name, KTQ_DTYPE_F32, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_model_read_tensor(h.data(), h.size() * 2, m.get(), name, KTQ_DTYPE_BF16, nullptr), KTQ_OK);
    size_t nonzero = 0;
    for (size_t i = 0; i < f.size(); ++i) {
        uint32_t bits;
        std::memcpy(&bits, &f[i], 4);
        uint16_t rounded = static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
        ASSERT_EQ(h[i], rounded) << i;
        nonzero += f[i] != 0.0f;
    }
    EXPECT_GT(nonzero, f.size() / 2);
    // A buffer one byte short is refused, naming the tensor.
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_model_read_tensor(h.data(), h.size() * 2 - 1, m.get(), name, KTQ_DTYPE_BF16, &err),
              KTQ_ERR_BUFFER_TOO_SMALL);
    EXPECT_NE(std::string(ktq_error_message(err)).find(name), std::string::npos);
    ktq_error_free(err);
}
