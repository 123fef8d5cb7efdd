#include "engines/rtn_engine.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "cuda/ct_rtn_cuda.h"
#include "engines/cast_engine.h"
#include "quant/ct_rtn.h"
#include "reading/dtype.h"
#include "runtime/error.h"

namespace ktq {

namespace {

constexpr uint64_t kChunkElements = 1u << 20;  // input values per task (4 MiB as float)
constexpr size_t kBatchTasks = 64;             // at least this many tasks per batch, when there are

// The outputs made from one Linear weight.
struct QuantizedWeight {
    const OutputTensor *packed = nullptr, *scale = nullptr, *zero_point = nullptr, *shape = nullptr;
};

struct Chunk {
    const QuantizedWeight *q;
    MatrixView view;
    uint64_t first, count;
};

// Rows [first, first + count) of `view` as floats holding values of `dtype`,
// the tensor as transformers would hold it after loading in that dtype.
void read_in_dtype(const Model &model, const MatrixView &view, uint64_t first, uint64_t count, ktq_dtype dtype,
                   std::vector<float> &out) {
    const uint64_t n = count * view.cols;
    out.resize(n);
    if (dtype == KTQ_DTYPE_BF16) {
        thread_local std::vector<uint16_t> bf16;
        bf16.resize(n);
        model.read_rows(view, first, count, KTQ_DTYPE_BF16, bf16.data());
        for (uint64_t i = 0; i < n; ++i) {
            const uint32_t u = static_cast<uint32_t>(bf16[i]) << 16;
            std::memcpy(&out[i], &u, 4);
        }
        return;
    }
    model.read_rows(view, first, count, KTQ_DTYPE_F32, out.data());
    ct::round_to_dtype(dtype, out.data(), n);
}

}  // namespace

void RtnEngine::run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                          const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) {
    std::vector<const OutputTensor *> copies;
    std::vector<std::string> order;  // sources in plan order
    std::map<std::string, QuantizedWeight> by_source;
    for (const OutputTensor *t : writer.tensors_of_layer(layer)) {
        if (t->ct_part == OutputTensor::CtPart::None) {
            copies.push_back(t);
            continue;
        }
        auto [it, inserted] = by_source.try_emplace(t->source);
        if (inserted) order.push_back(t->source);
        QuantizedWeight &q = it->second;
        switch (t->ct_part) {
        case OutputTensor::CtPart::Packed: q.packed = t; break;
        case OutputTensor::CtPart::Scale: q.scale = t; break;
        case OutputTensor::CtPart::ZeroPoint: q.zero_point = t; break;
        case OutputTensor::CtPart::Shape: q.shape = t; break;
        default: break;
        }
    }

    size_t next = 0;
    while (next < order.size()) {
        // A batch: whole weights, until there are enough chunks for every thread.
        std::vector<Chunk> chunks;
        size_t end = next;
        while (end < order.size() && chunks.size() < std::max<size_t>(kBatchTasks, 4 * static_cast<size_t>(pool.size()))) {
            const QuantizedWeight &q = by_source.at(order[end++]);
            if (!q.packed || !q.scale || !q.shape) fail(KTQ_ERR_INTERNAL, "compressed-tensors plan is incomplete for '" + q.packed->source + "'");
            const MatrixView view = model.matrix(q.packed->source);
            const uint64_t rows_per_chunk = std::max<uint64_t>(32, kChunkElements / std::max<uint64_t>(1, view.cols) / 32 * 32);
            for (uint64_t first = 0; first < view.rows; first += rows_per_chunk)
                chunks.push_back({&q, view, first, std::min(rows_per_chunk, view.rows - first)});
        }
        std::vector<uint64_t> bad(chunks.size(), 0);
        pool.parallel_for(chunks.size(), [&](size_t i) {
            const Chunk &c = chunks[i];
            const QuantizedWeight &q = *c.q;
            const ct::Scheme &s = q.packed->ct_scheme;
            const uint64_t cols = c.view.cols, groups = ct::groups_per_row(s, cols);
            const uint64_t words = ct::packed_words_per_row(s, cols), scale_size = dtype_size(s.dtype);
            thread_local std::vector<float> w;
            thread_local std::vector<uint32_t> packed, zp_packed;
            thread_local std::vector<uint8_t> scales;
            thread_local std::vector<int8_t> zp;
            packed.resize(c.count * words);
            scales.resize(c.count * groups * scale_size);
            zp.resize(s.symmetric ? 0 : c.count * groups);
            int8_t *zp_out = s.symmetric ? nullptr : zp.data();
            if (cuda_ && s.dtype == KTQ_DTYPE_BF16) {
                // BF16 travels to the device as is: half the bytes of floats.
                thread_local std::vector<uint16_t> raw;
                raw.resize(c.count * cols);
                model.read_rows(c.view, c.first, c.count, KTQ_DTYPE_BF16, raw.data());
                bad[i] = cuda_ct_quantize_rows(s, raw.data(), true, c.count, cols, packed.data(), scales.data(), zp_out);
            } else {
                read_in_dtype(model, c.view, c.first, c.count, s.dtype, w);
                bad[i] = cuda_ ? cuda_ct_quantize_rows(s, w.data(), false, c.count, cols, packed.data(), scales.data(), zp_out)
                               : ct::quantize_rows(s, w.data(), c.count, cols, packed.data(), scales.data(), zp_out);
            }
            if (bad[i] && !opts.allow_non_finite) return;
            writer.write(*q.packed, c.first * words * 4, packed.data(), packed.size() * 4);
            writer.write(*q.scale, c.first * groups * scale_size, scales.data(), scales.size());
            if (!s.symmetric) {
                zp_packed.resize(ct::zero_point_words(s, c.count) * groups);
                ct::pack_zero_points(s, zp.data(), c.count, groups, zp_packed.data());
                // c.first is a multiple of 32: its words start at first * bits / 32.
                writer.write(*q.zero_point, c.first * static_cast<uint64_t>(s.bits) / 32 * groups * 4, zp_packed.data(),
                             zp_packed.size() * 4);
            }
            if (c.first == 0) {
                const int64_t shape[2] = {static_cast<int64_t>(c.view.rows), static_cast<int64_t>(cols)};
                writer.write(*q.shape, 0, shape, sizeof shape);
            }
        });
        if (!opts.allow_non_finite)
            for (size_t i = 0; i < chunks.size(); ++i) {
                if (!bad[i]) continue;
                const std::string &name = chunks[i].q->packed->source;
                uint64_t total = 0;
                for (size_t j = 0; j < chunks.size(); ++j)
                    if (chunks[j].q == chunks[i].q) total += bad[j];
                const TensorRef &src = model.checkpoint().at(name);
                fail(KTQ_ERR_FORMAT, src.file->display_name() + ": tensor '" + name + "' holds " + std::to_string(total) +
                                         " NaN/Inf value(s) (corrupt download?); allow non-finite values to convert it anyway");
            }
        for (; next < end; ++next) {
            model.release(order[next]);
            if (!on_tensor(by_source.at(order[next]).packed->name, model.stored_bytes(order[next])))
                fail(KTQ_ERR_CANCELLED, "cancelled by the progress callback");
        }
    }
    if (!copies.empty()) CastEngine().run_tensors(model, copies, writer, pool, opts, on_tensor);
}

}  // namespace ktq
