#include "runtime/topology.h"

#include <hwloc.h>

#include <algorithm>

namespace ktq {

const Topology &Topology::get() {
    static const Topology topology;
    return topology;
}

Topology::Topology() {
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0) {
        cores_per_node_.assign(1, 1);
        return;
    }
    if (hwloc_topology_load(topo) == 0) {
        cores_ = std::max(1, hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE));
        pus_ = std::max(1, hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU));
        int nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
        for (int n = 0; n < nodes; ++n) {
            hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n);
            int in_node = hwloc_get_nbobjs_inside_cpuset_by_type(topo, node->cpuset, HWLOC_OBJ_CORE);
            cores_per_node_.push_back(std::max(0, in_node));
        }
    }
    if (cores_per_node_.empty()) cores_per_node_.push_back(cores_);
    hwloc_topology_destroy(topo);
}

int Topology::cores_in_node(int node) const {
    if (node < 0 || node >= numa_nodes()) return 0;
    return cores_per_node_[static_cast<size_t>(node)];
}

}  // namespace ktq
