// ktq doctor [--json]: what this machine offers the engines.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "ktq/ktq.h"

namespace ktq_cli {

namespace {

int run(bool json) {
    ktq_system_info s;
    ktq_system_info_init(&s, KTQ_SYSTEM_INFO_VERSION);
    ktq_error *err = nullptr;
    int st = ktq_system_get_info(&s, &err);
    if (st != KTQ_OK) return report_error(st, err);
    nlohmann::ordered_json cores = nlohmann::ordered_json::array();
    for (int n = 0; n < s.numa_nodes; ++n) cores.push_back(ktq_system_numa_cores(n));
    if (json) {
        nlohmann::ordered_json j;
        j["ktq_version"] = ktq_version();
        j["cpu"] = s.cpu_model;
        j["cores"] = s.cores;
        j["hardware_threads"] = s.pus;
        j["numa_nodes"] = s.numa_nodes;
        j["cores_per_numa_node"] = cores;
        j["avx2"] = s.avx2 != 0;
        j["avx512f"] = s.avx512f != 0;
        j["avx512_vnni"] = s.avx512_vnni != 0;
        j["avx512_bf16"] = s.avx512_bf16 != 0;
        j["amx_tile"] = s.amx_tile != 0;
        j["amx_int8"] = s.amx_int8 != 0;
        j["amx_bf16"] = s.amx_bf16 != 0;
        j["kt_amx_kernels"] = s.amx_tile && s.amx_int8;
        j["kt_threadpool_count"] = s.numa_nodes;
        j["cuda_built"] = s.cuda_built != 0;
        j["cuda_devices"] = s.cuda_devices;
        j["cuda_device0"] = s.cuda_device0;
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    auto yn = [](int v) { return v ? "yes" : "no"; };
    std::printf("ktq %s\n", ktq_version());
    std::printf("cpu            %s\n", s.cpu_model[0] ? s.cpu_model : "(unknown)");
    std::printf("cores          %d physical, %d hardware threads\n", s.cores, s.pus);
    std::printf("numa nodes     %d, cores per node %s\n", s.numa_nodes, cores.dump().c_str());
    // What kt-kernel's CPU MoE kernels can use for ktq's --format kt output.
    std::printf("kt AMX path    %s; convert with --threadpool-count %d (one part per NUMA node)\n",
                s.amx_tile && s.amx_int8 ? "yes: kt-kernel's AMXINT4/AMXINT8 kernels run on AMX tiles here"
                : s.avx512f             ? "no AMX: kt-kernel serves the same files with its AVX-512 kernels"
                                        : "no AMX, no AVX-512: kt-kernel's AMX formats do not run here",
                s.numa_nodes > 0 ? s.numa_nodes : 1);
    std::printf("avx2           %s\n", yn(s.avx2));
    std::printf("avx-512        %s (vnni %s, bf16 %s)\n", yn(s.avx512f), yn(s.avx512_vnni), yn(s.avx512_bf16));
    std::printf("amx            %s (int8 %s, bf16 %s)\n", yn(s.amx_tile), yn(s.amx_int8), yn(s.amx_bf16));
    if (!s.cuda_built)
        std::printf("cuda           not built (configure with -DKTQ_CUDA=ON)\n");
    else
        std::printf("cuda           %d device(s)%s%s\n", s.cuda_devices, s.cuda_devices ? ", 0: " : "",
                    s.cuda_device0);
    return 0;
}

}  // namespace

Command add_doctor_command(CLI::App &app) {
    auto json = std::make_shared<bool>(false);
    CLI::App *cmd = app.add_subcommand("doctor", "Show CPU features (AVX-512, AMX), NUMA nodes and CUDA devices");
    cmd->add_flag("--json", *json, "Print JSON");
    return {cmd, [json] { return run(*json); }};
}

}  // namespace ktq_cli
