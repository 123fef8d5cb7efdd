// CUDA device discovery. Built from cuda_devices.cu with -DKTQ_CUDA=ON,
// from cuda_devices_none.cpp otherwise, so callers never need #ifdefs.
#pragma once

#include <cstddef>
#include <string>

namespace ktq {

bool cuda_built();
// Number of usable devices (0 when none or when the driver is missing);
// `name0` receives device 0's name.
int cuda_device_count(std::string *name0);
// Free and total memory of a device; false without it.
bool cuda_memory_info(int device, size_t *free_bytes, size_t *total_bytes);

}  // namespace ktq
