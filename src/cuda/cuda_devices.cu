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

bool cuda_memory_info(int device, size_t *free_bytes, size_t *total_bytes) {
    if (cudaSetDevice(device) != cudaSuccess || cudaMemGetInfo(free_bytes, total_bytes) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return true;
}

}  // namespace ktq
