#include <cuda_runtime.h>

#include "cuda/cuda_devices.h"

namespace ktq {

bool cuda_built() { return true; }

int cuda_device_count(std::string *name0) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no driver" error
        return 0;
    }
    if (count > 0 && name0) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) *name0 = prop.name;
    }
    return count;
}

}  // namespace ktq
