// Built when libktq is configured without CUDA.
#include "cuda/ct_rtn_cuda.h"
#include "cuda/cuda_forward.h"
#include "cuda/cuda_matmul.h"
#include "cuda/cuda_devices.h"
#include "runtime/error.h"

namespace ktq {

bool cuda_built() { return false; }
int cuda_device_count(std::string *) { return 0; }
bool cuda_memory_info(int, size_t *, size_t *) { return false; }

uint64_t cuda_ct_quantize_rows(const ct::Scheme &, const void *, bool, uint64_t, uint64_t, uint32_t *, void *, int8_t *) {
    fail(KTQ_ERR_UNSUPPORTED, "this libktq was built without CUDA (configure with -DKTQ_CUDA=ON)");
}

std::unique_ptr<MatmulBackend> make_cuda_matmul(int, size_t) {
    fail(KTQ_ERR_UNSUPPORTED, "this libktq was built without CUDA (configure with -DKTQ_CUDA=ON): no GPU forward pass");
}

std::unique_ptr<DeviceForward> make_cuda_forward(const ForwardConfig &, int64_t, int64_t, int64_t, int, size_t) {
    fail(KTQ_ERR_UNSUPPORTED, "this libktq was built without CUDA (configure with -DKTQ_CUDA=ON): no GPU forward pass");
}

}  // namespace ktq
