package io.ktq;

/**
 * What this machine offers the engines (from hwloc and CPUID, and CUDA when libktq was built with it): NUMA
 * nodes, physical cores, hardware threads, the CPU instruction sets the kernels use, and the usable CUDA
 * devices. {@code cudaDevice0} is the name of CUDA device 0, or "".
 */
public record SystemInfo(int numaNodes, int cores, int pus, boolean avx2, boolean avx512f, boolean avx512Vnni,
                         boolean avx512Bf16, boolean amxTile, boolean amxInt8, boolean amxBf16, boolean cudaBuilt,
                         int cudaDevices, String cpuModel, String cudaDevice0) {}
