// C API: what the machine offers (CPU features, NUMA topology, CUDA).
#include <cstring>

#include "api/handles.h"
#include "cuda/cuda_devices.h"
#include "runtime/cpu_features.h"
#include "runtime/topology.h"

extern "C" {

ktq_status ktq_system_info_init(ktq_system_info *info, unsigned version) {
    return ktq::init_versioned(info, version, KTQ_SYSTEM_INFO_VERSION);
}

ktq_status ktq_system_get_info(ktq_system_info *info, ktq_error **err) {
    return ktq::guarded(err, [&] {
        ktq::require(info != nullptr, "info is NULL");
        ktq::check_version(info->version, KTQ_SYSTEM_INFO_VERSION, "ktq_system_info");
        const ktq::Topology &topo = ktq::Topology::get();
        const ktq::CpuFeatures &cpu = ktq::CpuFeatures::get();
        info->numa_nodes = topo.numa_nodes();
        info->cores = topo.cores();
        info->pus = topo.pus();
        info->avx2 = cpu.avx2;
        info->avx512f = cpu.avx512f;
        info->avx512_vnni = cpu.avx512_vnni;
        info->avx512_bf16 = cpu.avx512_bf16;
        info->amx_tile = cpu.amx_tile;
        info->amx_int8 = cpu.amx_int8;
        info->amx_bf16 = cpu.amx_bf16;
        std::strncpy(info->cpu_model, cpu.model.c_str(), sizeof info->cpu_model - 1);
        info->cuda_built = ktq::cuda_built();
        std::string name0;
        info->cuda_devices = ktq::cuda_device_count(&name0);
        std::strncpy(info->cuda_device0, name0.c_str(), sizeof info->cuda_device0 - 1);
    });
}

int ktq_system_numa_cores(int node) {
    const ktq::Topology &topo = ktq::Topology::get();
    if (node < 0 || node >= topo.numa_nodes()) return KTQ_ERR_NOT_FOUND;
    return topo.cores_in_node(node);
}

}  // extern "C"
