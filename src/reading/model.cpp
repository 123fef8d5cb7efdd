#include "reading/model.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>

#include "reading/dtype.h"
#include "runtime/error.h"
#include "runtime/strings.h"

namespace ktq {

namespace {

constexpr uint64_t kDefaultMaxHeader = 100ull << 20;
constexpr const char *kScaleSuffix = "_scale_inv";  // weight -> weight_scale_inv

std::string config_path_for(const std::string &path) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
        auto slash = path.rfind('/');
        return (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/config.json";
    }
    std::string dir = path;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    return dir + "/config.json";
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

}  // namespace

Model::Model(const std::string &path, const ktq_open_options &opts) {
    struct stat st {};
    if (path.empty() || stat(path.c_str(), &st) != 0) fail(KTQ_ERR_NOT_FOUND, path + ": no such file or folder");
    const std::string config_path = config_path_for(path);
    if (stat(config_path.c_str(), &st) != 0)
        fail(KTQ_ERR_NOT_FOUND, config_path + ": not found (a Hugging Face model folder has a config.json)");
    config_ = ModelConfig::load(config_path, "config.json");
    checkpoint_ = std::make_unique<Checkpoint>(path, opts.max_header_bytes ? opts.max_header_bytes : kDefaultMaxHeader);
    check_not_quantized();

    // Dominant dtype of the matrices, by bytes.
    std::map<ktq_dtype, uint64_t> bytes_by_dtype;
    bool any_fp8 = false;
    for (const auto &name : checkpoint_->names()) {
        const TensorEntry &e = *checkpoint_->at(name).entry;
        if (e.shape.size() >= 2) bytes_by_dtype[e.dtype] += e.nbytes();
        any_fp8 = any_fp8 || e.dtype == KTQ_DTYPE_F8_E4M3 || e.dtype == KTQ_DTYPE_F8_E5M2;
    }
    uint64_t best = 0;
    for (const auto &kv : bytes_by_dtype)
        if (kv.second > best) best = kv.second, source_dtype_ = kv.first;

    // Any FP8 tensor may carry a block scale: the block size must never be 0.
    if (config_.quantization.quant_method == "fp8" || any_fp8) {
        block_rows_ = config_.quantization.block_rows ? config_.quantization.block_rows : 128;
        block_cols_ = config_.quantization.block_cols ? config_.quantization.block_cols : 128;
    }
    check_fp8_scales();
    arch_ = Architecture::detect(config_, *checkpoint_);
    pool_ = std::make_unique<ThreadPool>(resolve_threads(opts.threads));
}

void Model::check_not_quantized() const {
    const std::string &method = config_.quantization.quant_method;
    if (!method.empty() && method != "fp8")
        fail(KTQ_ERR_UNSUPPORTED, checkpoint_->dir() + "/config.json: checkpoint is already quantized "
                                  "(quantization_config.quant_method = \"" + method +
                                  "\"); ktq reads BF16/FP16/FP32 or block-FP8 checkpoints");
    for (const auto &name : checkpoint_->names()) {
        for (const char *suffix : {".weight_packed", ".qweight", ".qzeros", ".g_idx", ".weight_zero_point"}) {
            if (ends_with(name, suffix))
                fail(KTQ_ERR_UNSUPPORTED, checkpoint_->find(name)->file->display_name() + ": tensor '" + name +
                                              "' belongs to an already-quantized checkpoint (" +
                                              (std::string(suffix) == ".weight_packed" ||
                                                       std::string(suffix) == ".weight_zero_point"
                                                   ? "compressed-tensors"
                                                   : "GPTQ/AWQ") +
                                              "); ktq reads BF16/FP16/FP32 or block-FP8 checkpoints");
        }
    }
}

const TensorRef *Model::fp8_scale_of(const std::string &tensor) const {
    return checkpoint_->find(tensor + kScaleSuffix);
}

void Model::check_fp8_scales() const {
    for (const auto &name : checkpoint_->names()) {
        const TensorRef &ref = checkpoint_->at(name);
        const TensorEntry &w = *ref.entry;
        if (w.dtype != KTQ_DTYPE_F8_E4M3 && w.dtype != KTQ_DTYPE_F8_E5M2) continue;
        const TensorRef *scale = fp8_scale_of(name);
        const std::string where = ref.file->display_name() + ": tensor '" + name + "'";
        if (!scale) {
            if (config_.quantization.quant_method == "fp8")
                fail(KTQ_ERR_FORMAT, where + " is FP8 but has no '" + name + kScaleSuffix + "' block scale");
            continue;  // plain FP8 values, read as they are
        }
        const TensorEntry &s = *scale->entry;
        if (w.shape.size() != 2)
            fail(KTQ_ERR_UNSUPPORTED, where + ": block-scaled FP8 must be 2-D, shape has " +
                                          std::to_string(w.shape.size()) + " dimensions");
        uint64_t want_r = ceil_div(static_cast<uint64_t>(w.shape[0]), static_cast<uint64_t>(block_rows_));
        uint64_t want_c = ceil_div(static_cast<uint64_t>(w.shape[1]), static_cast<uint64_t>(block_cols_));
        if (s.dtype != KTQ_DTYPE_F32 && s.dtype != KTQ_DTYPE_BF16)
            fail(KTQ_ERR_FORMAT, scale->file->display_name() + ": tensor '" + s.name + "': FP8 block scale must be F32 or BF16, is " +
                                     dtype_name(s.dtype));
        if (s.shape.size() != 2 || static_cast<uint64_t>(s.shape[0]) != want_r ||
            static_cast<uint64_t>(s.shape[1]) != want_c)
            fail(KTQ_ERR_FORMAT, scale->file->display_name() + ": tensor '" + s.name + "': FP8 block scale has shape " +
                                     (s.shape.size() == 2 ? "[" + std::to_string(s.shape[0]) + ", " + std::to_string(s.shape[1]) + "]"
                                                          : std::to_string(s.shape.size()) + "-D") +
                                     ", expected [" + std::to_string(want_r) + ", " + std::to_string(want_c) + "] for " +
                                     std::to_string(block_rows_) + "x" + std::to_string(block_cols_) + " blocks of [" +
                                     std::to_string(w.shape[0]) + ", " + std::to_string(w.shape[1]) + "]");
    }
}

bool Model::is_fp8_scale(const std::string &tensor) const {
    if (!ends_with(tensor, kScaleSuffix)) return false;
    const TensorRef *w = checkpoint_->find(tensor.substr(0, tensor.size() - std::string(kScaleSuffix).size()));
    return w && (w->entry->dtype == KTQ_DTYPE_F8_E4M3 || w->entry->dtype == KTQ_DTYPE_F8_E5M2);
}

MatrixView Model::matrix(const std::string &tensor) const {
    const TensorEntry &e = *checkpoint_->at(tensor).entry;
    MatrixView v;
    v.tensor = tensor;
    if (e.shape.size() <= 1) {  // scalars and vectors are one row
        v.cols = e.numel();
        v.rows = v.cols ? 1 : 0;
    } else {
        v.cols = static_cast<uint64_t>(e.shape.back());
        v.rows = v.cols ? e.numel() / v.cols : 0;
    }
    return v;
}

MatrixView Model::expert(int layer, int expert, ktq_expert_proj proj) const {
    if (layer < 0 || layer >= static_cast<int>(arch_.layers.size()))
        fail(KTQ_ERR_NOT_FOUND, "layer " + std::to_string(layer) + " does not exist (model has " +
                                    std::to_string(arch_.layers.size()) + " layers)");
    const LayerExperts &le = arch_.layers[static_cast<size_t>(layer)];
    if (le.storage == KTQ_EXPERTS_NONE)
        fail(KTQ_ERR_NOT_FOUND, "layer " + std::to_string(layer) + " has no routed experts");
    if (expert < 0 || expert >= le.num_experts)
        fail(KTQ_ERR_NOT_FOUND, "layer " + std::to_string(layer) + ": expert " + std::to_string(expert) +
                                    " does not exist (" + std::to_string(le.num_experts) + " experts)");
    if (proj < KTQ_PROJ_GATE || proj > KTQ_PROJ_DOWN)
        fail(KTQ_ERR_INVALID_ARGUMENT, "invalid expert projection " + std::to_string(static_cast<int>(proj)));
    if (le.storage == KTQ_EXPERTS_PER_EXPERT) {
        MatrixView v = matrix(le.per_expert[static_cast<size_t>(expert)][static_cast<size_t>(proj)]);
        if (checkpoint_->at(v.tensor).entry->shape.size() != 2)
            fail(KTQ_ERR_FORMAT, "expert tensor '" + v.tensor + "' is not 2-D");
        return v;
    }
    // Fused: gate_up [E, 2I, H] (gate rows first), down [E, H, I].
    const bool down = proj == KTQ_PROJ_DOWN;
    const TensorEntry &e = *checkpoint_->at(down ? le.fused_down : le.fused_gate_up).entry;
    MatrixView v;
    v.tensor = e.name;
    v.cols = static_cast<uint64_t>(e.shape[2]);
    uint64_t per_expert_rows = static_cast<uint64_t>(e.shape[1]);
    v.rows = down ? per_expert_rows : per_expert_rows / 2;
    v.row_begin = static_cast<uint64_t>(expert) * per_expert_rows + (proj == KTQ_PROJ_UP ? v.rows : 0);
    return v;
}

void Model::read_rows(const MatrixView &view, uint64_t first, uint64_t count, ktq_dtype out, void *dst) const {
    if (out != KTQ_DTYPE_F32 && out != KTQ_DTYPE_BF16)
        fail(KTQ_ERR_INVALID_ARGUMENT, "tensors are read as F32 or BF16, not " + std::string(dtype_name(out)));
    const TensorRef &ref = checkpoint_->at(view.tensor);
    const TensorEntry &e = *ref.entry;
    if (!dtype_is_float(e.dtype))
        fail(KTQ_ERR_UNSUPPORTED, ref.file->display_name() + ": tensor '" + e.name + "' has integer dtype " +
                                      dtype_name(e.dtype) + " and cannot be read as floating point");
    if (first + count > view.rows) fail(KTQ_ERR_INVALID_ARGUMENT, "row range outside tensor '" + e.name + "'");
    const size_t esize = dtype_size(e.dtype);
    const uint8_t *base = ref.file->data(e) + (view.row_begin + first) * view.cols * esize;
    const TensorRef *scale = (e.dtype == KTQ_DTYPE_F8_E4M3 || e.dtype == KTQ_DTYPE_F8_E5M2) ? fp8_scale_of(e.name) : nullptr;

    if (!scale) {
        const uint64_t n = count * view.cols;
        if (e.dtype == out) {  // stored as asked: a plain copy
            ref.file->copy_out(base, n * esize, dst);
            return;
        }
        if (out == KTQ_DTYPE_F32)
            convert_to_f32(static_cast<float *>(dst), base, e.dtype, n);
        else
            convert_to_bf16(static_cast<uint16_t *>(dst), base, e.dtype, n);
        return;
    }

    // Block FP8: value * scale[row / block_rows][col / block_cols], in float32.
    const TensorEntry &s = *scale->entry;
    const uint64_t scale_cols = static_cast<uint64_t>(s.shape[1]);
    const uint8_t *scale_base = scale->file->data(s);
    const size_t osize = dtype_size(out);
    std::vector<float> scale_row(scale_cols);
    uint64_t scale_row_index = UINT64_MAX;
    for (uint64_t r = 0; r < count; ++r) {
        const uint64_t abs_row = view.row_begin + first + r;
        if (abs_row / static_cast<uint64_t>(block_rows_) != scale_row_index) {
            scale_row_index = abs_row / static_cast<uint64_t>(block_rows_);
            convert_to_f32(scale_row.data(), scale_base + scale_row_index * scale_cols * dtype_size(s.dtype), s.dtype,
                           scale_cols);
        }
        dequant_fp8_row(static_cast<uint8_t *>(dst) + r * view.cols * osize, out, base + r * view.cols, e.dtype,
                        view.cols, scale_row.data(), static_cast<size_t>(block_cols_));
    }
}

void Model::read(const MatrixView &view, ktq_dtype out, void *dst) const {
    const uint64_t target_elems = 1 << 20;  // about 1M elements per task
    const uint64_t rows_per_task = std::max<uint64_t>(1, target_elems / std::max<uint64_t>(1, view.cols));
    const uint64_t tasks = (view.rows + rows_per_task - 1) / rows_per_task;
    const size_t osize = dtype_size(out);
    pool_->parallel_for(tasks, [&](size_t t) {
        uint64_t first = t * rows_per_task;
        uint64_t count = std::min(rows_per_task, view.rows - first);
        read_rows(view, first, count, out, static_cast<uint8_t *>(dst) + first * view.cols * osize);
    });
}

uint64_t Model::expert_bytes(int layer, int expert, ktq_expert_proj proj) const {
    const MatrixView v = this->expert(layer, expert, proj);
    return v.rows * v.cols * dtype_size(checkpoint_->at(v.tensor).entry->dtype);
}

uint64_t Model::stored_bytes(const std::string &tensor) const {
    const TensorEntry &e = *checkpoint_->at(tensor).entry;
    uint64_t bytes = e.nbytes();
    if (e.dtype == KTQ_DTYPE_F8_E4M3 || e.dtype == KTQ_DTYPE_F8_E5M2)
        if (const TensorRef *scale = fp8_scale_of(tensor)) bytes += scale->entry->nbytes();
    return bytes;
}

void Model::release(const std::string &tensor) const {
    const TensorRef &ref = checkpoint_->at(tensor);
    ref.file->release(ref.entry->begin, ref.entry->end);
    if (const TensorRef *scale = fp8_scale_of(tensor)) scale->file->release(scale->entry->begin, scale->entry->end);
}

}  // namespace ktq
