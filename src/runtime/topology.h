// Topology - the machine as hwloc sees it: NUMA nodes, cores per node,
// hardware threads. Loaded once per process (hwloc topology loading takes
// milliseconds) and read-only afterwards, so it is safe from any thread.
#pragma once

#include <vector>

namespace ktq {

class Topology {
public:
    static const Topology &get();

    int numa_nodes() const { return static_cast<int>(cores_per_node_.size()); }
    int cores() const { return cores_; }
    int pus() const { return pus_; }
    // Physical cores in NUMA node `node` (0 if out of range).
    int cores_in_node(int node) const;

private:
    Topology();
    int cores_ = 1;
    int pus_ = 1;
    std::vector<int> cores_per_node_;
};

}  // namespace ktq
