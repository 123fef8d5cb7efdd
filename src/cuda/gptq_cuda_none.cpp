// Builds without CUDA: the GPU GPTQ path reports that it is missing.
#include "cuda/gptq_cuda.h"
#include "runtime/error.h"

namespace ktq::cuda_gptq {

namespace {
[[noreturn]] void missing() {
    fail(KTQ_ERR_UNSUPPORTED, "this libktq was built without CUDA (-DKTQ_CUDA=ON): GPTQ on a GPU is not available");
}
}  // namespace

struct DeviceHessian::Impl {};
DeviceHessian::DeviceHessian(int64_t, int) { missing(); }
DeviceHessian::~DeviceHessian() = default;
int64_t DeviceHessian::cols() const { missing(); }
uint64_t DeviceHessian::rows() const { missing(); }
void DeviceHessian::add(const float *, int64_t) { missing(); }
void DeviceHessian::add_device(const float *, int64_t) { missing(); }
void DeviceHessian::add_bf16_device(const void *, int64_t) { missing(); }
const float *DeviceHessian::device_sum() const { missing(); }
std::vector<float> DeviceHessian::normalized() const { missing(); }

struct DeviceRows::Impl {};
DeviceRows::DeviceRows(int) { missing(); }
DeviceRows::~DeviceRows() = default;
void DeviceRows::upload(const float *, int64_t, int64_t) { missing(); }
void DeviceRows::forget() { missing(); }
const float *DeviceRows::data() const { missing(); }
int64_t DeviceRows::rows() const { missing(); }

struct ExpertCalibrator::Impl {};
ExpertCalibrator::ExpertCalibrator(size_t, int) { missing(); }
ExpertCalibrator::~ExpertCalibrator() = default;
void ExpertCalibrator::add_down_hessian(DeviceHessian &, const void *, const float *, const float *, int64_t, int64_t,
                                        const DeviceRows &) {
    missing();
}

std::vector<gptq::Result> quantize(const Batch &, const gptq::Options &, const std::vector<int> &) { missing(); }

}  // namespace ktq::cuda_gptq
