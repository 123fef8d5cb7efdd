// GPTQ on a CUDA device, for many problems at once: an MoE layer has
// hundreds of small independent GPTQ problems (every expert's gate, up and
// down), and the GPU's speed comes from solving them together.
//
//   - Hessian sums: cuBLAS products with float32 accumulation
//     (DeviceHessian), from float32 host rows or BF16 device rows.
//   - Factorization: cuSOLVER in float64, the same potrf -> potri -> potrf
//     chain as the CPU path (quant/gptq.cpp), with the decisions (dead
//     columns, column order, dampening) taken by the shared gptq::plan_factor.
//   - Factorizations of a batch overlap on a few streams.
//   - Column loop: one kernel per block of columns for every problem of the
//     batch (a thread per weight row, the block's inverse-factor tile in
//     shared memory), then the lazy update of the later columns, with the
//     CPU path's operation order and rounding (no fused multiply-adds), so
//     the codes equal the CPU's except where the float64 factorizations of
//     the two libraries round differently in the last float32 bit.
//
// Built from gptq_cuda.cu with -DKTQ_CUDA=ON; gptq_cuda_none.cpp otherwise
// (every entry point throws KTQ_ERR_UNSUPPORTED). Not thread-safe: one
// object per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "quant/gptq.h"

namespace ktq::cuda_gptq {

// sum x x^T (float32, on the device) over the rows added, and their count.
class DeviceHessian {
public:
    DeviceHessian(int64_t cols, int device = 0);
    ~DeviceHessian();
    DeviceHessian(const DeviceHessian &) = delete;
    DeviceHessian &operator=(const DeviceHessian &) = delete;

    int64_t cols() const;
    uint64_t rows() const;
    // x: [n, cols] float32 rows in host memory.
    void add(const float *x, int64_t n);
    // x: [n, cols] float32 rows already on the device (DeviceRows).
    void add_device(const float *x, int64_t n);
    // x: [n, cols] BF16 rows already on the device (products exact in float32).
    void add_bf16_device(const void *x, int64_t n);
    // The device pointer of the sum, [cols, cols] float32.
    const float *device_sum() const;
    // 2 / rows * sum, on the host (gptq::Hessian::normalized's twin).
    std::vector<float> normalized() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Float32 rows copied to the device once and read by several products (a
// calibration batch's hidden states, seen by every expert).
class DeviceRows {
public:
    explicit DeviceRows(int device = 0);
    ~DeviceRows();
    DeviceRows(const DeviceRows &) = delete;
    DeviceRows &operator=(const DeviceRows &) = delete;
    // Copies x [n, cols] unless it is the host buffer uploaded last (same
    // pointer and shape; the caller says when its contents change: forget()).
    void upload(const float *x, int64_t n, int64_t cols);
    void forget();
    const float *data() const;
    int64_t rows() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// All-experts calibration of routed experts on the GPU: for every row x of
// the batch, a = silu(x gate^T) * (x up^T) in float32 (cuBLAS, no TF32),
// summed into the expert's down Hessian as a a^T. Each expert's gate/up
// weights are copied to the device on first use and kept while they fit in
// `max_cached_bytes` (later experts are copied at each call; the object
// lives for one layer's calibration pass).
class ExpertCalibrator {
public:
    explicit ExpertCalibrator(size_t max_cached_bytes = size_t(-1), int device = 0);
    ~ExpertCalibrator();
    ExpertCalibrator(const ExpertCalibrator &) = delete;
    ExpertCalibrator &operator=(const ExpertCalibrator &) = delete;
    // gate, up: [inter, hidden] host floats (`key` names them, e.g. the
    // Linear's address); x: rows of `hidden` floats on the device.
    void add_down_hessian(DeviceHessian &down, const void *key, const float *gate, const float *up, int64_t inter,
                          int64_t hidden, const DeviceRows &x);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A normalized Hessian (2 / rows * sum) for the batch: host floats, or a
// device sum and the factor that normalizes it.
struct HessianRef {
    const float *host = nullptr;    // [cols, cols], normalized
    const float *device = nullptr;  // [cols, cols] sum on the device, times `scale`
    float scale = 1.0f;
};

// Problems of one shape [rows, cols]; problem i reads weights[i] (host,
// values of the scheme's dtype as floats) or weights_bf16[i] (host, raw BF16:
// half the bytes to move; only with a BF16 scheme) and factor factor_of[i]
// (an index into hessians: siblings that read the same input share one).
struct Batch {
    int64_t rows = 0, cols = 0;
    std::vector<HessianRef> hessians;
    std::vector<const float *> weights;
    std::vector<const uint16_t *> weights_bf16;
    std::vector<int> factor_of;
    // Fill Result::dequantized (what a writer needs is codes and scales; the
    // dequantized weights feed the next layer's calibration forward).
    bool dequantized = true;
    // Device memory the batch may hold (0: half of what is free). Problems
    // are solved in chunks of whole factors that fit; one problem that does
    // not fails with KTQ_ERR_NO_MEMORY.
    size_t max_device_bytes = 0;
};

// Per problem: what gptq::quantize returns for it on the CPU (the observer
// and the dequantized values are computed on the device too). With several
// devices the chunks are spread over them, one host thread each; the
// results do not depend on how many (device sums of another GPU are copied
// over).
std::vector<gptq::Result> quantize(const Batch &batch, const gptq::Options &opts, const std::vector<int> &devices = {0});

}  // namespace ktq::cuda_gptq
