#include "engines/kt_awq_engine.h"

#include <map>
#include <vector>

#include "engines/cast_engine.h"
#include "quant/kt_awq.h"
#include "runtime/error.h"

namespace ktq {

void KtAwqEngine::run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                            const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) {
    std::vector<const OutputTensor *> copies;
    struct Task {
        const OutputTensor *out[3] = {nullptr, nullptr, nullptr};  // weight, qzeros, scale (OutputTensor::part)
    };
    std::map<std::pair<int, int>, Task> by_matrix;  // (expert, proj)
    for (const OutputTensor *t : writer.tensors_of_layer(layer)) {
        if (t->expert < 0) {
            copies.push_back(t);
            continue;
        }
        by_matrix[{t->expert, t->proj}].out[t->part] = t;
    }
    std::vector<std::pair<std::pair<int, int>, Task>> tasks(by_matrix.begin(), by_matrix.end());
    const size_t batch = 4 * static_cast<size_t>(pool.size());
    for (size_t first = 0; first < tasks.size(); first += batch) {
        const size_t count = std::min(batch, tasks.size() - first);
        pool.parallel_for(count, [&](size_t i) {
            const auto &[key, task] = tasks[first + i];
            const MatrixView view = model.expert(layer, key.first, static_cast<ktq_expert_proj>(key.second));
            Model::AwqStored st;
            if (!model.awq_stored(view.tensor, &st) || !task.out[0] || !task.out[1] || !task.out[2])
                fail(KTQ_ERR_INTERNAL, "kt-awq plan does not match expert '" + view.tensor + "'");
            const uint64_t groups = st.cols / st.group;
            auto read_all = [](const TensorRef &ref, std::vector<uint8_t> &buf) {
                buf.resize(ref.entry->nbytes());
                ref.file->copy_out(ref.file->data(*ref.entry), buf.size(), buf.data());
            };
            std::vector<uint8_t> q, z, s;
            read_all(*st.qweight, q);
            read_all(*st.qzeros, z);
            read_all(*st.scales, s);
            std::vector<uint32_t> weight(st.rows * st.cols / 8), zeros(groups * st.rows / 8);
            kt_awq::repack_weight(reinterpret_cast<const uint32_t *>(q.data()), st.rows, st.cols, weight.data());
            kt_awq::repack_zeros(reinterpret_cast<const uint32_t *>(z.data()), st.rows, groups, zeros.data());
            writer.write(*task.out[0], 0, weight.data(), weight.size() * 4);
            writer.write(*task.out[1], 0, zeros.data(), zeros.size() * 4);
            writer.write(*task.out[2], 0, s.data(), s.size());
        });
        for (size_t i = 0; i < count; ++i) {
            const auto &[key, task] = tasks[first + i];
            if (!on_tensor(task.out[0]->name,
                           model.stored_bytes(model.expert(layer, key.first, static_cast<ktq_expert_proj>(key.second)).tensor)))
                fail(KTQ_ERR_CANCELLED, "cancelled by the progress callback");
        }
    }
    for (const auto &[key, task] : tasks)
        model.release(model.expert(layer, key.first, static_cast<ktq_expert_proj>(key.second)).tensor);
    if (!copies.empty()) CastEngine().run_tensors(model, copies, writer, pool, opts, on_tensor);
}

}  // namespace ktq
