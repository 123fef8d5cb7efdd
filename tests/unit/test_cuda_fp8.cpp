// GPU block-FP8 dequantization must be bit-identical to the CPU reader, on
// every FP8 tensor of the shared DeepSeek-V3 FP8 model. Runs on a machine
// with a CUDA device (the GPU host); skips with the reason elsewhere.
#include <gtest/gtest.h>

#include <cstring>

#include "cuda/cuda_devices.h"
#include "cuda/fp8_dequant.h"
#include "reading/model.h"
#include "test_support.h"

TEST(CudaFp8, BitIdenticalToCpuReader) {
    std::string name;
    if (ktq::cuda_device_count(&name) == 0) GTEST_SKIP() << "no CUDA device on this machine (GPU tests run on the GPU host)";
    std::string path = ktq_test::shared_model("tiny-deepseek-v3-fp8");
    KTQ_REQUIRE_SHARED(path);
    ktq_open_options opts;
    ktq_open_options_init(&opts, KTQ_OPEN_OPTIONS_VERSION);
    ktq::Model model(path, opts);
    size_t tensors = 0;
    for (const auto &t : model.checkpoint().names()) {
        const ktq::TensorRef &ref = model.checkpoint().at(t);
        if (ref.entry->dtype != KTQ_DTYPE_F8_E4M3) continue;
        const ktq::TensorRef &scale = model.checkpoint().at(t + "_scale_inv");
        const int64_t rows = ref.entry->shape[0], cols = ref.entry->shape[1];
        std::vector<uint16_t> cpu(static_cast<size_t>(rows * cols)), gpu(cpu.size());
        model.read(model.matrix(t), KTQ_DTYPE_BF16, cpu.data());
        std::vector<float> scales(scale.entry->numel());
        std::memcpy(scales.data(), scale.file->data(*scale.entry), scales.size() * 4);
        ktq::cuda_dequant_fp8_to_bf16(gpu.data(), ref.file->data(*ref.entry), scales.data(), rows, cols,
                                      model.fp8_block_rows(), model.fp8_block_cols());
        ASSERT_EQ(cpu, gpu) << t;
        ++tensors;
    }
    EXPECT_EQ(tensors, 117u);
    std::printf("checked %zu FP8 tensors on %s\n", tensors, name.c_str());
}
