// Built when libktq is configured without CUDA.
#include "cuda/cuda_devices.h"

namespace ktq {

bool cuda_built() { return false; }
int cuda_device_count(std::string *) { return 0; }

}  // namespace ktq
