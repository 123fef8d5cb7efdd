/*
 * ktq/system.h - what this machine offers the engines: CPU instruction sets,
 * NUMA nodes and cores (from hwloc), CUDA devices (when built with CUDA).
 *
 * Thread-safety: safe to call from any thread.
 */
#ifndef KTQ_SYSTEM_H
#define KTQ_SYSTEM_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ktq_system_info {
    unsigned version;          /* KTQ_SYSTEM_INFO_VERSION */
    int numa_nodes;            /* >= 1 */
    int cores;                 /* physical cores */
    int pus;                   /* hardware threads */
    int avx2;
    int avx512f;
    int avx512_vnni;
    int avx512_bf16;
    int amx_tile;
    int amx_int8;
    int amx_bf16;
    int cuda_built;            /* library compiled with -DKTQ_CUDA=ON */
    int cuda_devices;          /* usable CUDA devices (0 if not built or none) */
    char cpu_model[128];
    char cuda_device0[128];    /* name of device 0, or "" */
} ktq_system_info;
#define KTQ_SYSTEM_INFO_VERSION 1
KTQ_API ktq_status ktq_system_info_init(ktq_system_info *info, unsigned version);
KTQ_API ktq_status ktq_system_get_info(ktq_system_info *info, ktq_error **err);

/* Cores of NUMA node `node` (from hwloc), or a negative status. */
KTQ_API int ktq_system_numa_cores(int node);

#ifdef __cplusplus
}
#endif

#endif /* KTQ_SYSTEM_H */
