#include "engines/ct_layer_outputs.h"

#include "runtime/error.h"

namespace ktq {

const ct::Scheme *CtLayerOutputs::scheme_of(const Linear *l) const {
    auto it = targets.find(const_cast<Linear *>(l));
    return it == targets.end() || !it->second.packed ? nullptr : &it->second.packed->ct_scheme;
}

CtLayerOutputs ct_layer_outputs(Writer &writer, int layer, LayerWeights &w, const std::string &family,
                                const char *engine) {
    std::map<std::string, Linear *> by_tensor;
    for (Linear *l : w.quantizable()) by_tensor[l->name + ".weight"] = l;
    CtLayerOutputs out;
    for (const OutputTensor *t : writer.tensors_of_layer(layer)) {
        if (t->ct_part == OutputTensor::CtPart::None) {
            out.copies.push_back(t);
            continue;
        }
        auto it = by_tensor.find(t->source);
        if (it == by_tensor.end())
            fail(KTQ_ERR_UNSUPPORTED, std::string(engine) + " cannot calibrate '" + t->source +
                                          "': it is not a Linear of ktq's forward pass for " + family +
                                          " (ignore it, or quantize it with the rtn engine)");
        CtParts &p = out.targets[it->second];
        switch (t->ct_part) {
        case OutputTensor::CtPart::Packed: p.packed = t; break;
        case OutputTensor::CtPart::Scale: p.scale = t; break;
        case OutputTensor::CtPart::ZeroPoint: p.zero_point = t; break;
        case OutputTensor::CtPart::Shape: p.shape = t; break;
        default: break;
        }
    }
    for (const auto &[l, p] : out.targets)
        if (!p.packed || !p.scale || !p.shape || (!p.packed->ct_scheme.symmetric && !p.zero_point))
            fail(KTQ_ERR_INTERNAL, "compressed-tensors plan is incomplete for '" + l->name + "'");
    return out;
}

void write_ct_linear(Writer &writer, const CtParts &parts, const ct::Scheme &s, uint64_t rows, uint64_t cols,
                     const std::vector<uint32_t> &packed, const std::vector<uint8_t> &scales,
                     const std::vector<int8_t> &zero_points) {
    writer.write(*parts.packed, 0, packed.data(), packed.size() * 4);
    writer.write(*parts.scale, 0, scales.data(), scales.size());
    if (!s.symmetric) {
        const uint64_t groups = ct::groups_per_row(s, cols);
        std::vector<uint32_t> words(ct::zero_point_words(s, rows) * groups);
        ct::pack_zero_points(s, zero_points.data(), rows, groups, words.data());
        writer.write(*parts.zero_point, 0, words.data(), words.size() * 4);
    }
    const int64_t shape[2] = {static_cast<int64_t>(rows), static_cast<int64_t>(cols)};
    writer.write(*parts.shape, 0, shape, sizeof shape);
}

}  // namespace ktq
