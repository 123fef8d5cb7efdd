#include "engines/cast_engine.h"

#include <algorithm>
#include <vector>

#include "reading/dtype.h"
#include "runtime/error.h"

namespace ktq {

namespace {
constexpr uint64_t kChunkBytes = 4u << 20;
}

void CastEngine::run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                           const TensorDoneFn &on_tensor) {
    for (const OutputTensor *out : writer.tensors_of_layer(layer)) {
        const TensorRef &src = model.checkpoint().at(out->source);
        if (out->dtype == src.entry->dtype && !dtype_is_float(out->dtype)) {
            // Integer tensors travel unchanged.
            writer.write(*out, 0, src.file->data(*src.entry), src.entry->nbytes());
        } else {
            if (out->dtype != KTQ_DTYPE_BF16 && out->dtype != KTQ_DTYPE_F32)
                fail(KTQ_ERR_INTERNAL, "cast engine cannot produce " + std::string(dtype_name(out->dtype)));
            const MatrixView view = model.matrix(out->source);
            const size_t osize = dtype_size(out->dtype);
            const uint64_t row_bytes = std::max<uint64_t>(1, view.cols * osize);
            const uint64_t rows_per_chunk = std::max<uint64_t>(1, kChunkBytes / row_bytes);
            const uint64_t chunks = (view.rows + rows_per_chunk - 1) / rows_per_chunk;
            pool.parallel_for(chunks, [&](size_t c) {
                const uint64_t first = c * rows_per_chunk;
                const uint64_t count = std::min(rows_per_chunk, view.rows - first);
                thread_local std::vector<uint8_t> buffer;
                buffer.resize(count * row_bytes);
                model.read_rows(view, first, count, out->dtype, buffer.data());
                writer.write(*out, first * row_bytes, buffer.data(), count * row_bytes);
            });
        }
        model.release(out->source);
        if (!on_tensor(out->name, model.stored_bytes(out->source))) fail(KTQ_ERR_CANCELLED, "cancelled by the progress callback");
    }
}

}  // namespace ktq
