#include "engines/gguf_engine.h"

#include <algorithm>
#include <vector>

#include "quant/ggml_blocks.h"
#include "reading/dtype.h"
#include "runtime/error.h"

namespace ktq {

namespace {

constexpr uint64_t kChunkElements = 1u << 20;

struct Task {
    const OutputTensor *out;
    MatrixView view;          // the source matrix (one expert's, for experts)
    uint64_t first, count;    // rows of the view
    uint64_t out_offset;      // bytes into the output tensor where row `first` goes
    uint64_t out_row;         // the output tensor's row (over all its slices) where row `first` goes
    int expert;               // the view's expert, or -1
};

// Quantizes `rows` rows of `src` into `dst`. With importance (an imatrix), row
// r of the output tensor takes the importance row of its slice (its expert,
// or its head of a split MLA tensor), as llama-quantize hands it to ggml.
void quantize_rows(const GgmlTypeTraits &tr, const OutputTensor &t, const float *src, uint64_t rows, uint64_t out_row,
                   uint8_t *dst) {
    const uint64_t ne0 = static_cast<uint64_t>(t.shape.back());
    if (!t.gguf_importance || !tr.quantize_importance) {
        tr.quantize(dst, src, rows * ne0 / tr.block_size);
        return;
    }
    const uint64_t rows_per_slice = static_cast<uint64_t>(t.shape[t.shape.size() - 2]);
    const uint64_t row_bytes = ne0 / tr.block_size * tr.type_size;
    for (uint64_t r = 0; r < rows; ++r) {
        const float *importance =
            t.gguf_importance->data() + t.gguf_importance_offset + (out_row + r) / rows_per_slice * ne0;
        tr.quantize_importance(dst + r * row_bytes, src + r * ne0, ne0, importance);
    }
}

// llama.cpp's row order for llama's Q/K: within each head, the rows of the
// two rotary halves interleaved (HF keeps them as two blocks).
uint64_t permuted_source_row(uint64_t out_row, uint64_t rows, int heads) {
    const uint64_t per_head = rows / static_cast<uint64_t>(heads), half = per_head / 2;
    const uint64_t h = out_row / per_head, r = out_row % per_head;
    return h * per_head + (r % 2) * half + r / 2;
}

// llama.cpp's split of DeepSeek's kv_b_proj ([heads * (nope + v), kv_lora]):
// attn_k_b holds each head's nope rows transposed ([heads][kv_lora][nope]),
// attn_v_b each head's v rows ([heads][v][kv_lora]). Returns the values written.
uint64_t mla_rows(const OutputTensor &t, const float *kv_b, uint64_t kv_lora, float *out) {
    const uint64_t heads = static_cast<uint64_t>(t.gguf_mla_heads), nope = static_cast<uint64_t>(t.gguf_mla_nope),
                   v = static_cast<uint64_t>(t.gguf_mla_v), per_head = nope + v;
    uint64_t n = 0;
    for (uint64_t h = 0; h < heads; ++h) {
        const float *head = kv_b + h * per_head * kv_lora;
        if (t.gguf_mla_part == 1) {
            for (uint64_t c = 0; c < kv_lora; ++c)
                for (uint64_t i = 0; i < nope; ++i) out[n++] = head[i * kv_lora + c];
        } else {
            for (uint64_t j = 0; j < v * kv_lora; ++j) out[n++] = head[nope * kv_lora + j];
        }
    }
    return n;
}

}  // namespace

bool writes_gguf(Writer &writer, int layer) {
    for (const OutputTensor *t : writer.tensors_of_layer(layer))
        if (t->gguf_type >= 0) return true;
    return false;
}

void GgufEngine::run_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                           const ktq_quantize_options &opts, const TensorDoneFn &on_tensor) {
    write_gguf_layer(model, layer, writer, pool, opts, on_tensor, nullptr);
}

void write_gguf_layer(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                      const ktq_quantize_options &opts, const TensorDoneFn &on_tensor, const GgufSourceValues &source_values) {
    const auto &tensors = writer.tensors_of_layer(layer);
    std::vector<Task> tasks;
    std::vector<size_t> first_task(tensors.size() + 1, 0);
    for (size_t ti = 0; ti < tensors.size(); ++ti) {
        const OutputTensor *t = tensors[ti];
        const GgmlTypeTraits *tr = ggml_traits(static_cast<ktq_ggml_type>(t->gguf_type));
        if (!tr) fail(KTQ_ERR_INTERNAL, "GGUF plan has no ggml type for '" + t->name + "'");
        first_task[ti] = tasks.size();
        if (t->gguf_values) {  // computed by the plan: no source to read
            const std::vector<float> &v = *t->gguf_values;
            if (v.size() % tr->block_size != 0)
                fail(KTQ_ERR_INTERNAL, "'" + t->name + "' does not fill whole " + tr->name + " blocks");
            std::vector<uint8_t> blocks(v.size() / tr->block_size * tr->type_size);
            tr->quantize(blocks.data(), v.data(), v.size() / tr->block_size);
            writer.write(*t, 0, blocks.data(), blocks.size());
            continue;
        }
        std::vector<MatrixView> views;
        std::vector<int> experts;
        if (t->gguf_stacked_experts)
            for (int e = 0; e < static_cast<int>(t->shape[0]); ++e) {
                views.push_back(model.expert(layer, e, static_cast<ktq_expert_proj>(t->proj)));
                experts.push_back(e);
            }
        else if (t->expert >= 0) {
            views.push_back(model.expert(layer, t->expert, static_cast<ktq_expert_proj>(t->proj)));
            experts.push_back(t->expert);
        } else {
            views.push_back(model.matrix(t->source));
            experts.push_back(-1);
        }
        if (t->gguf_mla_part) {  // one task: the whole kv_b_proj, rearranged (see mla_rows)
            const uint64_t row = static_cast<uint64_t>(t->shape.back());
            if (row % tr->block_size != 0)
                fail(KTQ_ERR_FORMAT, "'" + t->name + "': rows of " + std::to_string(row) + " values do not fit " +
                                         tr->name + " blocks of " + std::to_string(tr->block_size));
            tasks.push_back({t, views[0], 0, views[0].rows, 0, 0, -1});
            continue;
        }
        uint64_t base = 0, base_row = 0;
        for (size_t vi = 0; vi < views.size(); ++vi) {
            const MatrixView &v = views[vi];
            if (v.cols % tr->block_size != 0)
                fail(KTQ_ERR_FORMAT, "'" + v.tensor + "': rows of " + std::to_string(v.cols) + " values do not fit " +
                                         tr->name + " blocks of " + std::to_string(tr->block_size));
            const uint64_t row_bytes = v.cols / tr->block_size * tr->type_size;
            // A permuted matrix is one task (its rows come from all over it).
            const uint64_t rows_per = t->gguf_permute_heads ? v.rows
                                                            : std::max<uint64_t>(1, kChunkElements / std::max<uint64_t>(1, v.cols));
            for (uint64_t r = 0; r < v.rows; r += rows_per)
                tasks.push_back({t, v, r, std::min(rows_per, v.rows - r), base + r * row_bytes, base_row + r, experts[vi]});
            base += v.rows * row_bytes;
            base_row += v.rows;
        }
    }
    first_task[tensors.size()] = tasks.size();
    std::vector<uint64_t> bad(tasks.size(), 0);
    pool.parallel_for(tasks.size(), [&](size_t i) {
        const Task &k = tasks[i];
        const GgmlTypeTraits &tr = *ggml_traits(static_cast<ktq_ggml_type>(k.out->gguf_type));
        thread_local std::vector<float> rows, permuted;
        thread_local std::vector<uint8_t> blocks;
        rows.resize(k.count * k.view.cols);
        const float *given = source_values ? source_values(*k.out, k.view, k.expert) : nullptr;
        if (given)
            std::copy(given + k.first * k.view.cols, given + (k.first + k.count) * k.view.cols, rows.begin());
        else
            model.read_rows(k.view, k.first, k.count, KTQ_DTYPE_F32, rows.data());
        if (!opts.allow_non_finite) bad[i] = count_non_finite(rows.data(), KTQ_DTYPE_F32, rows.size(), nullptr);
        const float *src = rows.data();
        uint64_t values = rows.size();
        if (k.out->gguf_mla_part) {
            permuted.resize(rows.size());
            values = mla_rows(*k.out, rows.data(), k.view.cols, permuted.data());
            src = permuted.data();
        } else if (k.out->gguf_permute_heads) {
            permuted.resize(rows.size());
            for (uint64_t r = 0; r < k.count; ++r) {
                const uint64_t from = permuted_source_row(r, k.count, k.out->gguf_permute_heads);
                std::copy(rows.begin() + static_cast<ptrdiff_t>(from * k.view.cols),
                          rows.begin() + static_cast<ptrdiff_t>((from + 1) * k.view.cols),
                          permuted.begin() + static_cast<ptrdiff_t>(r * k.view.cols));
            }
            src = permuted.data();
        }
        const uint64_t nblocks = values / tr.block_size;
        blocks.resize(nblocks * tr.type_size);
        quantize_rows(tr, *k.out, src, values / static_cast<uint64_t>(k.out->shape.back()), k.out_row, blocks.data());
        writer.write(*k.out, k.out_offset, blocks.data(), blocks.size());
    });
    for (size_t i = 0; i < tasks.size(); ++i)
        if (bad[i])
            fail(KTQ_ERR_FORMAT, model.checkpoint().at(tasks[i].view.tensor).file->display_name() + ": tensor '" +
                                     tasks[i].view.tensor + "' holds NaN/Inf value(s) (corrupt download?); allow "
                                     "non-finite values to convert it anyway");
    // Let the kernel drop the input pages read for this layer (they would
    // otherwise stay mapped: RSS the size of the model).
    for (const Task &k : tasks)
        if (k.first == 0) model.release(k.view.tensor);
    for (size_t ti = 0; ti < tensors.size(); ++ti) {
        uint64_t in_bytes = 0;
        for (size_t i = first_task[ti]; i < first_task[ti + 1]; ++i)
            if (tasks[i].first == 0) in_bytes += model.stored_bytes(tasks[i].view.tensor);
        if (!on_tensor(tensors[ti]->name, in_bytes)) fail(KTQ_ERR_CANCELLED, "cancelled by the progress callback");
    }
}

}  // namespace ktq
