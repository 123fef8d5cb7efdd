// ktq's half of bench/gptq_moe_layer.py: GPTQ W4A16 (group 128, symmetric,
// static act-order, dampening 0.01, block 128) of one synthetic MoE layer on
// a GPU with all-experts calibration, from the files `gptq_moe_layer.py make`
// writes. Timed as the Python baseline is, from inputs and weights already in
// device memory:
//   calibration: the gate/up Hessian once from all tokens (every expert's
//     gate and up read the same input), then per expert gate/up products in
//     BF16 (as the model runs), silu(gate) * up in BF16, and its down Hessian;
//     products exact in float32 with float32 accumulation (cuBLAS);
//   solve: ktq's batched CUDA GPTQ (cuda/gptq_cuda.h) over the 256 gate/up
//     problems (one shared factor) and the 128 down problems, from the BF16
//     weights in host memory to the codes and scales in host memory (what
//     the checkpoint writer needs).
// Then, not timed, the dequantized weights from codes and scales: written as
// ktq_gate_up.bf16, ktq_down.bf16 (the baseline's layout) with ktq_times.json
// into DIR.
// usage: ktq_bench_gptq_moe DIR [threads]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/gptq_cuda.h"
#include "quant/ct_rtn_math.h"
#include "runtime/thread_pool.h"

namespace {

void ck(cudaError_t e, const char *what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
void ck(cublasStatus_t e, const char *what) {
    if (e != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + ": cuBLAS status " + std::to_string(e));
}

std::vector<uint16_t> read_bf16(const std::string &path, size_t n) {
    std::vector<uint16_t> v(n);
    std::ifstream f(path, std::ios::binary);
    if (!f.read(reinterpret_cast<char *>(v.data()), static_cast<std::streamsize>(n * 2)))
        throw std::runtime_error("cannot read " + std::to_string(n) + " BF16 values from " + path);
    return v;
}

void write_bf16(const std::string &path, const std::vector<uint16_t> &v) {
    std::ofstream f(path, std::ios::binary);
    if (!f.write(reinterpret_cast<const char *>(v.data()), static_cast<std::streamsize>(v.size() * 2)))
        throw std::runtime_error("cannot write " + path);
}

// a = bf16(bf16(silu(g)) * u): transformers' act_fn(gate_proj(x)) * up_proj(x) in BF16.
__global__ void silu_mul(__nv_bfloat16 *a, const __nv_bfloat16 *gu, int64_t tokens, int64_t inter) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= tokens * inter) return;
    const int64_t t = i / inter, j = i % inter;
    const float g = __bfloat162float(gu[t * 2 * inter + j]), u = __bfloat162float(gu[t * 2 * inter + inter + j]);
    const float s = __bfloat162float(__float2bfloat16(g / (1.0f + expf(-g))));
    a[i] = __float2bfloat16(s * u);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char **argv) try {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s DIR [threads]\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    const int threads = argc > 2 ? std::stoi(argv[2]) : 16;
    nlohmann::json meta;
    std::ifstream(dir + "/meta.json") >> meta;
    const int64_t H = meta["hidden"], E = meta["experts"], I = meta["inter"], N = meta["tokens"];
    const int group = meta["group_size"];
    std::fprintf(stderr, "ktq: %lld tokens, hidden %lld, %lld experts x %lld\n", static_cast<long long>(N),
                 static_cast<long long>(H), static_cast<long long>(E), static_cast<long long>(I));

    // Inputs and weights into device memory (not timed, as for the baseline).
    const std::vector<uint16_t> x_h = read_bf16(dir + "/x.bf16", static_cast<size_t>(N * H));
    const std::vector<uint16_t> gu_h = read_bf16(dir + "/gate_up.bf16", static_cast<size_t>(E * 2 * I * H));
    const std::vector<uint16_t> down_h = read_bf16(dir + "/down.bf16", static_cast<size_t>(E * H * I));
    __nv_bfloat16 *x = nullptr, *gu = nullptr, *act = nullptr, *gu_out = nullptr;
    ck(cudaMalloc(&x, x_h.size() * 2), "cudaMalloc x");
    ck(cudaMemcpy(x, x_h.data(), x_h.size() * 2, cudaMemcpyHostToDevice), "copy x");
    ck(cudaMalloc(&gu, gu_h.size() * 2), "cudaMalloc gate_up");
    ck(cudaMemcpy(gu, gu_h.data(), gu_h.size() * 2, cudaMemcpyHostToDevice), "copy gate_up");
    const int64_t chunk = 65536;
    ck(cudaMalloc(&gu_out, static_cast<size_t>(chunk * 2 * I) * 2), "cudaMalloc gate_up out");
    ck(cudaMalloc(&act, static_cast<size_t>(chunk * I) * 2), "cudaMalloc act");
    cublasHandle_t blas;
    ck(cublasCreate(&blas), "cublasCreate");
    ktq::ThreadPool pool(threads);
    ck(cudaDeviceSynchronize(), "sync");

    // ---- calibration ----
    const auto t0 = std::chrono::steady_clock::now();
    ktq::cuda_gptq::DeviceHessian h_in(H);
    std::vector<std::unique_ptr<ktq::cuda_gptq::DeviceHessian>> h_down;
    for (int64_t e = 0; e < E; ++e) h_down.push_back(std::make_unique<ktq::cuda_gptq::DeviceHessian>(I));
    const float one = 1.0f, zero = 0.0f;
    for (int64_t r = 0; r < N; r += chunk) {
        const int64_t n = std::min(chunk, N - r);
        const __nv_bfloat16 *xc = x + r * H;
        h_in.add_bf16_device(xc, n);
        for (int64_t e = 0; e < E; ++e) {
            // [n, 2I] = x [n, H] . W_gu^T; column-major: W_gu^T(op T of [H, 2I]) x [H, n].
            ck(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(2 * I), static_cast<int>(n),
                            static_cast<int>(H), &one, gu + e * 2 * I * H, CUDA_R_16BF, static_cast<int>(H), xc,
                            CUDA_R_16BF, static_cast<int>(H), &zero, gu_out, CUDA_R_16BF, static_cast<int>(2 * I),
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "gate/up product");
            silu_mul<<<static_cast<unsigned>((n * I + 255) / 256), 256>>>(act, gu_out, n, I);
            ck(cudaGetLastError(), "silu_mul");
            h_down[static_cast<size_t>(e)]->add_bf16_device(act, n);
        }
        if ((r / chunk) % 4 == 0) std::fprintf(stderr, "ktq: calibration %lld / %lld tokens\n", static_cast<long long>(r + n),
                                               static_cast<long long>(N));
    }
    ck(cudaDeviceSynchronize(), "sync");
    const double calibration_s = seconds_since(t0);

    // ---- solve: weights in (BF16, from host memory), codes and scales out ----
    const auto t1 = std::chrono::steady_clock::now();
    ktq::gptq::Options o;
    o.scheme.bits = 4;
    o.scheme.group_size = group;
    o.scheme.symmetric = true;
    o.scheme.dtype = KTQ_DTYPE_BF16;
    o.block_size = 128;
    o.dampening_frac = 0.01;
    o.act_order = ktq::gptq::ActOrder::Static;
    ktq::cuda_gptq::Batch up;  // gate and up of every expert: [I, H], one factor
    up.rows = I;
    up.cols = H;
    up.dequantized = false;
    up.hessians.push_back({nullptr, h_in.device_sum(), 2.0f / static_cast<float>(h_in.rows())});
    for (int64_t e = 0; e < E; ++e)
        for (int k = 0; k < 2; ++k) {
            up.weights_bf16.push_back(gu_h.data() + (e * 2 + k) * I * H);
            up.factor_of.push_back(0);
        }
    ktq::cuda_gptq::Batch down;  // [H, I], a factor per expert
    down.rows = H;
    down.cols = I;
    down.dequantized = false;
    for (int64_t e = 0; e < E; ++e) {
        const auto &h = *h_down[static_cast<size_t>(e)];
        down.hessians.push_back({nullptr, h.device_sum(), 2.0f / static_cast<float>(h.rows())});
        down.weights_bf16.push_back(down_h.data() + e * H * I);
        down.factor_of.push_back(static_cast<int>(e));
    }
    const std::vector<ktq::gptq::Result> r_up = ktq::cuda_gptq::quantize(up, o);
    const double up_s = seconds_since(t1);
    const std::vector<ktq::gptq::Result> r_down = ktq::cuda_gptq::quantize(down, o);
    const double solve_s = seconds_since(t1);
    std::fprintf(stderr, "ktq: calibration %.2f s, solve %.2f s (gate/up %.2f s)\n", calibration_s, solve_s, up_s);

    // ---- outputs (not timed): what the codes stand for, for the error report ----
    std::vector<uint16_t> out_gu(gu_h.size()), out_down(down_h.size());
    size_t fallbacks = 0;
    auto dequantize = [&](const std::vector<ktq::gptq::Result> &rs, int64_t rows, int64_t cols, std::vector<uint16_t> &out) {
        pool.parallel_for(rs.size(), [&](size_t p) {
            const ktq::gptq::Result &r = rs[p];
            const int64_t groups = cols / group;
            for (int64_t i = 0; i < rows; ++i)
                for (int64_t c = 0; c < cols; ++c) {
                    const ktq::ct::math::GroupParams gp{r.scales[static_cast<size_t>(i * groups + c / group)], 0.0f};
                    const float v = ktq::ct::math::value_of(ktq::ct::math::kBF16, r.codes[static_cast<size_t>(i * cols + c)], gp);
                    out[p * static_cast<size_t>(rows * cols) + static_cast<size_t>(i * cols + c)] = ktq::ct::math::bf16_bits(v);
                }
        });
        for (const auto &r : rs) fallbacks += r.rtn_fallback;
    };
    dequantize(r_up, I, H, out_gu);
    dequantize(r_down, H, I, out_down);
    write_bf16(dir + "/ktq_gate_up.bf16", out_gu);
    write_bf16(dir + "/ktq_down.bf16", out_down);
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    nlohmann::json times = {{"calibration_s", calibration_s}, {"solve_s", solve_s},
                            {"solve_gate_up_s", up_s},       {"total_s", calibration_s + solve_s},
                            {"device", prop.name},           {"host_threads", threads},
                            {"rtn_fallbacks", fallbacks}};
    std::ofstream(dir + "/ktq_times.json") << times.dump(1) << "\n";
    std::printf("%s\n", times.dump().c_str());
    cublasDestroy(blas);
    cudaFree(x);
    cudaFree(gu);
    cudaFree(gu_out);
    cudaFree(act);
    return 0;
} catch (const std::exception &e) {
    std::fprintf(stderr, "ktq_bench_gptq_moe: %s\n", e.what());
    return 1;
}
