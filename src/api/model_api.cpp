// C API: opening models, describing them, reading tensors and experts.
#include <algorithm>
#include <cstring>

#include "api/handles.h"
#include "reading/dtype.h"

using ktq::check_version;
using ktq::fail;
using ktq::guarded;
using ktq::require;

namespace {

void check_read_target(const void *buf, size_t buf_bytes, ktq_dtype dtype, uint64_t numel, const std::string &what) {
    require(buf != nullptr || numel == 0, "buf is NULL");
    if (dtype != KTQ_DTYPE_F32 && dtype != KTQ_DTYPE_BF16)
        fail(KTQ_ERR_INVALID_ARGUMENT, what + ": tensors are read as F32 or BF16");
    const uint64_t need = numel * ktq::dtype_size(dtype);
    if (buf_bytes < need)
        fail(KTQ_ERR_BUFFER_TOO_SMALL, what + ": needs " + std::to_string(need) + " bytes, buffer has " +
                                           std::to_string(buf_bytes));
}

}  // namespace

extern "C" {

namespace {

// Bytes of each options version: a caller built against an older header
// passes a smaller struct, read only as far as it goes.
size_t open_options_size(unsigned version) {
    return version == 1   ? offsetof(ktq_open_options, kt_experts)
           : version == 2 ? offsetof(ktq_open_options, gguf_weights)
                          : sizeof(ktq_open_options);
}

}  // namespace

ktq_status ktq_open_options_init(ktq_open_options *opts, unsigned version) {
    return ktq::init_versioned_prefix(opts, version, KTQ_OPEN_OPTIONS_VERSION, open_options_size);
}

ktq_status ktq_open_model(ktq_model **out, const char *path, const ktq_open_options *opts, ktq_error **err) {
    if (out) *out = nullptr;
    return guarded(err, [&] {
        require(out != nullptr, "out is NULL");
        require(path != nullptr, "path is NULL");
        ktq_open_options defaults;
        ktq_open_options_init(&defaults, KTQ_OPEN_OPTIONS_VERSION);
        ktq::overlay_versioned(defaults, opts, KTQ_OPEN_OPTIONS_VERSION, "ktq_open_options", open_options_size);
        auto model = std::make_unique<ktq_model>();
        model->path = path;
        model->impl = std::make_unique<ktq::Model>(path, defaults);
        *out = model.release();
    });
}

void ktq_model_free(ktq_model *model) { delete model; }

ktq_status ktq_model_info_init(ktq_model_info *info, unsigned version) {
    return ktq::init_versioned(info, version, KTQ_MODEL_INFO_VERSION);
}

ktq_status ktq_model_get_info(ktq_model_info *info, const ktq_model *model, ktq_error **err) {
    return guarded(err, [&] {
        require(info != nullptr && model != nullptr, "info or model is NULL");
        check_version(info->version, KTQ_MODEL_INFO_VERSION, "ktq_model_info");
        const ktq::Model &m = *model->impl;
        const ktq::ModelConfig &c = m.config();
        const ktq::Architecture &a = m.arch();
        info->architecture = c.architecture.c_str();
        info->model_type = c.model_type.c_str();
        info->path = model->path.c_str();
        info->notice = a.notice.c_str();
        info->family = a.family;
        info->num_layers = static_cast<int>(a.layers.size());
        info->hidden_size = c.hidden_size;
        info->intermediate_size = c.intermediate_size;
        info->moe_intermediate_size = a.num_moe_layers ? a.moe_intermediate : 0;
        info->num_experts = a.num_experts;
        info->experts_per_token = a.num_moe_layers ? c.experts_per_token : 0;
        info->first_dense_layers = a.num_moe_layers ? a.first_dense_layers : info->num_layers;
        info->num_moe_layers = a.num_moe_layers;
        int shared = 0;
        if (a.num_moe_layers) {
            bool any_shared = std::any_of(a.layers.begin(), a.layers.end(), [](const ktq::LayerExperts &l) {
                return l.storage != KTQ_EXPERTS_NONE && l.has_shared_expert;
            });
            if (any_shared) shared = c.num_shared_experts > 0 ? c.num_shared_experts : 1;
        }
        info->num_shared_experts = shared;
        info->vocab_size = c.vocab_size;
        info->expert_storage = a.storage;
        info->source_dtype = m.source_dtype();
        info->fp8_block_rows = m.fp8_block_rows();
        info->fp8_block_cols = m.fp8_block_cols();
        info->num_tensors = m.checkpoint().names().size();
        info->num_files = m.checkpoint().files().size();
        info->total_bytes = m.checkpoint().total_bytes();
    });
}

const char *ktq_arch_family_name(ktq_arch_family family) { return ktq::family_name(family); }

int ktq_model_layer_is_moe(const ktq_model *model, int layer) {
    if (!model || layer < 0 || layer >= static_cast<int>(model->impl->arch().layers.size())) return 0;
    return model->impl->arch().layers[static_cast<size_t>(layer)].storage != KTQ_EXPERTS_NONE;
}

ktq_status ktq_tensor_info_init(ktq_tensor_info *info, unsigned version) {
    return ktq::init_versioned(info, version, KTQ_TENSOR_INFO_VERSION);
}

size_t ktq_model_tensor_count(const ktq_model *model) {
    return model ? model->impl->checkpoint().names().size() : 0;
}

ktq_status ktq_model_tensor_info(ktq_tensor_info *info, const ktq_model *model, size_t index, ktq_error **err) {
    return guarded(err, [&] {
        require(info != nullptr && model != nullptr, "info or model is NULL");
        check_version(info->version, KTQ_TENSOR_INFO_VERSION, "ktq_tensor_info");
        const auto &names = model->impl->checkpoint().names();
        if (index >= names.size())
            fail(KTQ_ERR_NOT_FOUND, "tensor index " + std::to_string(index) + " out of range (" +
                                        std::to_string(names.size()) + " tensors)");
        const ktq::TensorRef &ref = model->impl->checkpoint().at(names[index]);
        info->name = ref.entry->name.c_str();
        info->file = ref.file->display_name().c_str();
        info->dtype = ref.entry->dtype;
        info->ndim = static_cast<int>(ref.entry->shape.size());
        for (int i = 0; i < KTQ_MAX_DIMS; ++i)
            info->shape[i] = i < info->ndim ? ref.entry->shape[static_cast<size_t>(i)] : 0;
        info->nbytes = ref.entry->nbytes();
        int layer = ktq::layer_of_tensor(ref.entry->name);
        info->layer = layer < static_cast<int>(model->impl->arch().layers.size()) ? layer : -1;
    });
}

ktq_status ktq_model_find_tensor(size_t *index, const ktq_model *model, const char *name, ktq_error **err) {
    return guarded(err, [&] {
        require(index != nullptr && model != nullptr && name != nullptr, "index, model or name is NULL");
        const auto &names = model->impl->checkpoint().names();
        auto it = std::lower_bound(names.begin(), names.end(), std::string(name));
        if (it == names.end() || *it != name) fail(KTQ_ERR_NOT_FOUND, std::string("no tensor named '") + name + "'");
        *index = static_cast<size_t>(it - names.begin());
    });
}

ktq_status ktq_model_read_tensor(void *buf, size_t buf_bytes, const ktq_model *model, const char *name,
                                 ktq_dtype dtype, ktq_error **err) {
    return guarded(err, [&] {
        require(model != nullptr && name != nullptr, "model or name is NULL");
        const ktq::Model &m = *model->impl;
        ktq::MatrixView view = m.matrix(name);
        check_read_target(buf, buf_bytes, dtype, view.rows * view.cols, std::string("tensor '") + name + "'");
        m.read(view, dtype, buf);
    });
}

ktq_status ktq_model_expert_shape(int64_t *rows, int64_t *cols, const ktq_model *model, int layer, int expert,
                                  ktq_expert_proj proj, ktq_error **err) {
    return guarded(err, [&] {
        require(rows != nullptr && cols != nullptr && model != nullptr, "rows, cols or model is NULL");
        ktq::MatrixView view = model->impl->expert(layer, expert, proj);
        *rows = static_cast<int64_t>(view.rows);
        *cols = static_cast<int64_t>(view.cols);
    });
}

ktq_status ktq_model_read_expert(void *buf, size_t buf_bytes, const ktq_model *model, int layer, int expert,
                                 ktq_expert_proj proj, ktq_dtype dtype, ktq_error **err) {
    return guarded(err, [&] {
        require(model != nullptr, "model is NULL");
        ktq::MatrixView view = model->impl->expert(layer, expert, proj);
        check_read_target(buf, buf_bytes, dtype, view.rows * view.cols,
                          "layer " + std::to_string(layer) + " expert " + std::to_string(expert));
        model->impl->read(view, dtype, buf);
    });
}

}  // extern "C"
