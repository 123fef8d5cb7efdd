// KtOutput - reads what the kt format holds: a folder written by ktq or by
// kt-kernel's converter, merged (`blk.L.ffn_P_exps.E.numa.N.{weight,scale}`
// in safetensors) or loose (`_layer_L/_numa_N/INT4_P_E_<n>Byte_quant_.kt`).
// Every expert part is described by its matrix shape and method, inferred
// from sizes (merged files carry no method: a down part's scale count is the
// hidden size, which tells INT4 from INT8 for the gate/up parts).
//
// Immutable after construction; reads are safe from many threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "quant/kt_amx.h"
#include "reading/safetensors_file.h"

namespace ktq {

struct KtPart {
    std::string name;  // "blk.L.ffn_gate_exps.E.numa.P" (+ ".weight" / ".scale" in merged files)
    int layer = 0, expert = 0, proj = 0, part = 0;  // proj: ktq_expert_proj
    kt_amx::Method method = kt_amx::Method::Int4;
    uint64_t rows = 0, cols = 0;  // the packed matrix [n, k]
    // Where the bytes are: a merged file's tensors, or two loose files.
    const SafetensorsFile *file = nullptr, *scale_file = nullptr;
    const TensorEntry *weight = nullptr, *scale = nullptr;
    std::string weight_path, scale_path;
    uint64_t weight_bytes = 0;
};

class KtOutput {
public:
    // Throws KTQ_ERR_NOT_FOUND when `dir` holds no kt expert files and
    // KTQ_ERR_FORMAT (naming file and tensor) for inconsistent ones.
    explicit KtOutput(const std::string &dir);
    ~KtOutput();

    bool merged() const { return !files_.empty(); }
    const std::string &dir() const { return dir_; }
    const std::vector<KtPart> &parts() const { return parts_; }  // by layer, proj, expert, part

    // The packed bytes (packed_bytes(method, rows, cols)) and rows scales.
    void read(const KtPart &p, uint8_t *packed, float *scales) const;
    // rows x cols dequantized weights (code x scale).
    void dequantize(const KtPart &p, float *dst) const;

private:
    std::string dir_;
    std::vector<std::unique_ptr<SafetensorsFile>> files_;
    std::vector<KtPart> parts_;
};

}  // namespace ktq
