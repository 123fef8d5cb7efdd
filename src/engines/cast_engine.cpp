#include "engines/cast_engine.h"

#include <algorithm>
#include <vector>

#include "quant/ct_rtn_math.h"
#include "reading/dtype.h"
#include "runtime/error.h"

namespace ktq {

namespace {

constexpr uint64_t kChunkBytes = 4u << 20;    // output bytes per task
constexpr uint64_t kBatchBytes = 256u << 20;  // output bytes in flight per batch

// One row range of one output tensor.
struct Task {
    const OutputTensor *out;
    MatrixView view;
    uint64_t first, count, row_bytes;
};

// Outputs stored exactly as read: integers, and same-dtype copies other
// than BF16/F32 (which are read through the reader for the NaN/Inf check).
bool is_raw_copy(const Model &model, const OutputTensor &out) {
    if (!dtype_is_float(out.dtype)) return true;
    const ktq_dtype stored = model.checkpoint().at(out.source).entry->dtype;
    return out.dtype == stored && stored != KTQ_DTYPE_BF16 && stored != KTQ_DTYPE_F32;
}

}  // namespace

void CastEngine::run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                           const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) {
    run_tensors(model, writer.tensors_of_layer(layer), writer, pool, opts, on_tensor);
}

void CastEngine::run_tensors(const Model &model, const std::vector<const OutputTensor *> &tensors, Writer &writer,
                             ThreadPool &pool, const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) {
    // MoE layers hold many small tensors (one expert matrix is often a single
    // chunk), so tasks are gathered across tensors into batches big enough
    // to keep every thread busy; progress and cancellation happen between
    // batches, on this thread.
    const size_t min_tasks = 4 * static_cast<size_t>(pool.size());
    size_t next = 0;
    while (next < tensors.size()) {
        std::vector<Task> tasks;
        uint64_t batch_bytes = 0;
        size_t end = next;
        while (end < tensors.size() && (tasks.size() < min_tasks && batch_bytes < kBatchBytes)) {
            const OutputTensor *out = tensors[end++];
            const MatrixView view = model.matrix(out->source);
            const uint64_t row_bytes = std::max<uint64_t>(1, view.cols * dtype_size(out->dtype));
            const uint64_t rows_per_chunk = std::max<uint64_t>(1, kChunkBytes / row_bytes);
            for (uint64_t first = 0; first < view.rows; first += rows_per_chunk)
                tasks.push_back({out, view, first, std::min(rows_per_chunk, view.rows - first), row_bytes});
            batch_bytes += out->nbytes();
        }
        // Non-finite values found per task; reported after the batch, the
        // first in task order, so the message never depends on threading.
        std::vector<size_t> bad_count(tasks.size(), 0), bad_first(tasks.size(), 0);
        pool.parallel_for(tasks.size(), [&](size_t i) {
            const Task &t = tasks[i];
            const TensorRef &src = model.checkpoint().at(t.out->source);
            if (is_raw_copy(model, *t.out)) {  // integer, F16, FP8 copies travel unchanged
                writer.write(*t.out, t.first * t.row_bytes, src.file->data(*src.entry) + t.first * t.row_bytes,
                             t.count * t.row_bytes);
                return;
            }
            if (t.out->dtype != KTQ_DTYPE_BF16 && t.out->dtype != KTQ_DTYPE_F32 && t.out->dtype != KTQ_DTYPE_F16)
                fail(KTQ_ERR_INTERNAL, "cast engine cannot produce " + std::string(dtype_name(t.out->dtype)));
            thread_local std::vector<uint8_t> buffer;
            buffer.resize(t.count * t.row_bytes);
            if (t.out->dtype == KTQ_DTYPE_F16) {
                // Read as F32 (exact for every input dtype but F64), then round to
                // nearest even as torch's .to(float16) does.
                thread_local std::vector<float> wide;
                wide.resize(t.count * t.view.cols);
                model.read_rows(t.view, t.first, t.count, KTQ_DTYPE_F32, wide.data());
                auto *h = reinterpret_cast<uint16_t *>(buffer.data());
                for (size_t k = 0; k < wide.size(); ++k) h[k] = ct::math::f16_bits(wide[k]);
            } else {
                model.read_rows(t.view, t.first, t.count, t.out->dtype, buffer.data());
            }
            if (!opts.allow_non_finite)
                bad_count[i] = count_non_finite(buffer.data(), t.out->dtype, t.count * t.view.cols, &bad_first[i]);
            writer.write(*t.out, t.first * t.row_bytes, buffer.data(), t.count * t.row_bytes);
        });
        for (size_t i = 0; i < tasks.size(); ++i) {
            if (!bad_count[i]) continue;
            const Task &t = tasks[i];
            size_t total = 0;
            for (size_t j = 0; j < tasks.size(); ++j)
                if (tasks[j].out == t.out) total += bad_count[j];
            const TensorRef &src = model.checkpoint().at(t.out->source);
            fail(KTQ_ERR_FORMAT, src.file->display_name() + ": tensor '" + t.out->source + "' holds " +
                                     std::to_string(total) + " NaN/Inf value(s), the first at element " +
                                     std::to_string(t.first * t.view.cols + bad_first[i]) +
                                     " (corrupt download?); allow non-finite values to convert it anyway");
        }
        for (; next < end; ++next) {
            const OutputTensor *out = tensors[next];
            model.release(out->source);
            if (!on_tensor(out->name, model.stored_bytes(out->source)))
                fail(KTQ_ERR_CANCELLED, "cancelled by the progress callback");
        }
    }
}

}  // namespace ktq
