#include "engines/kt_amx_engine.h"

#include <map>
#include <vector>

#include "engines/cast_engine.h"
#include "reading/dtype.h"
#include "runtime/error.h"

namespace ktq {

namespace {

// The outputs made from one expert matrix: weight and scale of each part.
struct ExpertTask {
    int expert = -1;
    ktq_expert_proj proj = KTQ_PROJ_GATE;
    std::vector<const OutputTensor *> weights, scales;  // indexed by part
};

using kt_amx::proj_name;

}  // namespace

void KtAmxEngine::run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                            const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) {
    std::vector<const OutputTensor *> copies;
    std::map<std::pair<int, int>, ExpertTask> by_matrix;  // (expert, proj), in expert-major order
    for (const OutputTensor *t : writer.tensors_of_layer(layer)) {
        if (t->expert < 0) {
            copies.push_back(t);
            continue;
        }
        ExpertTask &task = by_matrix[{t->expert, t->proj}];
        task.expert = t->expert;
        task.proj = static_cast<ktq_expert_proj>(t->proj);
        auto &slot = t->is_scale ? task.scales : task.weights;
        if (slot.size() <= static_cast<size_t>(t->part)) slot.resize(static_cast<size_t>(t->part) + 1, nullptr);
        slot[static_cast<size_t>(t->part)] = t;
    }
    std::vector<ExpertTask> tasks;
    for (auto &kv : by_matrix) tasks.push_back(std::move(kv.second));

    // Batches of a few tasks per thread, so progress and cancellation are
    // checked often and memory stays at one matrix per worker.
    const size_t batch = 4 * static_cast<size_t>(pool.size());
    for (size_t first = 0; first < tasks.size(); first += batch) {
        const size_t count = std::min(batch, tasks.size() - first);
        std::vector<size_t> bad_count(count, 0), bad_first(count, 0);
        pool.parallel_for(count, [&](size_t i) {
            const ExpertTask &task = tasks[first + i];
            const MatrixView view = model.expert(layer, task.expert, task.proj);
            thread_local std::vector<uint16_t> matrix;
            thread_local std::vector<uint8_t> packed;
            thread_local std::vector<float> scales;
            matrix.resize(view.rows * view.cols);
            model.read_rows(view, 0, view.rows, KTQ_DTYPE_BF16, matrix.data());
            const uint64_t parts = task.weights.size();
            // gate/up: part p holds rows [p*n, (p+1)*n); down: columns [p*k, (p+1)*k).
            const bool down = task.proj == KTQ_PROJ_DOWN;
            const uint64_t n = down ? view.rows : view.rows / parts;
            const uint64_t k = down ? view.cols / parts : view.cols;
            packed.resize(kt_amx::packed_bytes(method_, n, k));
            scales.resize(n);
            for (uint64_t p = 0; p < parts; ++p) {
                const OutputTensor *w = task.weights[p], *s = task.scales[p];
                if (!w || !s || w->nbytes() != packed.size() || s->nbytes() != n * 4)
                    fail(KTQ_ERR_INTERNAL, "kt plan does not match expert matrix '" + view.tensor + "'");
                const uint16_t *src = down ? matrix.data() + p * k : matrix.data() + p * n * view.cols;
                if (kt_amx::quantize_pack(method_, src, n, k, view.cols, packed.data(), scales.data()) &&
                    !opts.allow_non_finite) {
                    // Rare: count them exactly for the message, write nothing more.
                    bad_count[i] = count_non_finite(matrix.data(), KTQ_DTYPE_BF16, matrix.size(), &bad_first[i]);
                    return;
                }
                writer.write(*w, 0, packed.data(), packed.size());
                writer.write(*s, 0, scales.data(), n * 4);
            }
        });
        for (size_t i = 0; i < count; ++i) {
            if (!bad_count[i]) continue;
            const ExpertTask &task = tasks[first + i];
            const MatrixView view = model.expert(layer, task.expert, task.proj);
            const TensorRef &src = model.checkpoint().at(view.tensor);
            fail(KTQ_ERR_FORMAT, src.file->display_name() + ": tensor '" + view.tensor + "' (layer " +
                                     std::to_string(layer) + ", expert " + std::to_string(task.expert) + " " +
                                     proj_name(task.proj) + ") holds " + std::to_string(bad_count[i]) +
                                     " NaN/Inf value(s), the first at element " + std::to_string(bad_first[i]) +
                                     " (corrupt download?); allow non-finite values to convert it anyway");
        }
        for (size_t i = 0; i < count; ++i) {
            const ExpertTask &task = tasks[first + i];
            if (!on_tensor(task.weights[0]->name, model.expert_bytes(layer, task.expert, task.proj)))
                fail(KTQ_ERR_CANCELLED, "cancelled by the progress callback");
        }
    }
    for (const auto &task : tasks) model.release(model.expert(layer, task.expert, task.proj).tensor);
    if (!copies.empty()) CastEngine().run_tensors(model, copies, writer, pool, opts, on_tensor);
}

}  // namespace ktq
