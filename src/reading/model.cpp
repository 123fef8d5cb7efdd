#include "reading/model.h"

#include "reading/gguf_names.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <tuple>

#include "quant/kt_awq.h"
#include "reading/dtype.h"
#include "reading/gguf_names.h"
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
    open_packed_weights();
    open_awq_weights();
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
    if (opts.version >= 2 && opts.kt_experts && *opts.kt_experts) open_kt_experts(opts.kt_experts);
    if (opts.version >= 3 && opts.gguf_weights && *opts.gguf_weights) open_gguf_weights(opts.gguf_weights);
}

void Model::open_gguf_weights(const std::string &path) {
    gguf_file_ = std::make_unique<GgufFile>(path);
    const GgufFile &g = *gguf_file_;
    const std::string arch = g.get_string("general.architecture", "");
    // llama.cpp permutes llama's Q and K rows for its rotary layout (convert_hf_to_gguf, ktq's writer).
    const bool permuted = arch == "llama";
    const int heads = static_cast<int>(g.get_int(arch + ".attention.head_count", 0));
    const int kv_heads = static_cast<int>(g.get_int(arch + ".attention.head_count_kv", heads));
    auto place = [&](const MatrixView &v, const std::string &name, uint64_t first_row, uint64_t rows_in_file,
                     const std::string &hf) {
        const GgufFile::Tensor *t = g.find(name);
        if (!t)
            fail(KTQ_ERR_FORMAT, path + ": no tensor '" + name + "' for the checkpoint's '" + hf +
                                     "' (a GGUF file of another model, or written without it?)");
        if (t->ne[0] != v.cols || t->rows() != rows_in_file)
            fail(KTQ_ERR_FORMAT, path + ": tensor '" + name + "' has rows of " + std::to_string(t->ne[0]) + " x " +
                                     std::to_string(t->rows()) + ", the checkpoint's '" + hf + "' needs " +
                                     std::to_string(v.cols) + " x " + std::to_string(rows_in_file));
        GgufWeight w;
        w.tensor = t;
        w.first_row = first_row;
        w.rows = v.rows;
        if (permuted && (ends_with(name, ".attn_q.weight") || ends_with(name, ".attn_k.weight"))) {
            w.permute_heads = ends_with(name, ".attn_q.weight") ? heads : kv_heads;
            if (w.permute_heads <= 0 || v.rows % (2 * static_cast<uint64_t>(w.permute_heads)))
                fail(KTQ_ERR_FORMAT, path + ": '" + name + "': " + std::to_string(v.rows) + " rows do not split into " +
                                         std::to_string(w.permute_heads) + " rotary heads");
        }
        gguf_[{v.tensor, v.row_begin}] = w;
    };
    for (const auto &hf : checkpoint_->names()) {
        if (is_fp8_scale(hf)) continue;
        if (layer_of_tensor(hf) >= static_cast<int>(arch_.layers.size())) continue;  // MTP layers: not in GGUF files
        if (arch == "deepseek2" && ends_with(hf, ".self_attn.kv_b_proj.weight")) {
            const MatrixView v = matrix(hf);
            const std::string blk = "blk." + std::to_string(layer_of_tensor(hf));
            const GgufFile::Tensor *k_b = g.find(blk + ".attn_k_b.weight"), *v_b = g.find(blk + ".attn_v_b.weight");
            if (!k_b || !v_b)
                fail(KTQ_ERR_FORMAT, path + ": no " + blk + ".attn_k_b/attn_v_b.weight for the checkpoint's '" + hf + "'");
            // k_b: ne [nope, kv_lora, heads]; v_b: ne [kv_lora, v, heads]; kv_b: [heads * (nope + v), kv_lora].
            if (k_b->ne.size() != 3 || v_b->ne.size() != 3 || k_b->ne[1] != v.cols || v_b->ne[0] != v.cols ||
                k_b->ne[2] != v_b->ne[2] || v.rows != k_b->ne[2] * (k_b->ne[0] + v_b->ne[1]))
                fail(KTQ_ERR_FORMAT, path + ": " + blk + ".attn_k_b/attn_v_b do not split '" + hf + "' (" +
                                         std::to_string(v.rows) + " x " + std::to_string(v.cols) + ")");
            GgufWeight w;
            w.tensor = k_b;
            w.value = v_b;
            w.nope = k_b->ne[0];
            w.v = v_b->ne[1];
            w.rows = v.rows;
            gguf_[{v.tensor, v.row_begin}] = w;
            continue;
        }
        const std::string name = gguf_tensor_name(hf);
        if (name.empty()) continue;  // routed experts below; rotary caches and MTP layers are not in GGUF files
        const MatrixView v = matrix(hf);
        place(v, name, 0, v.rows, hf);
    }
    static const char *kProj[3] = {"gate", "up", "down"};
    for (size_t l = 0; l < arch_.layers.size(); ++l) {
        const LayerExperts &le = arch_.layers[l];
        if (le.storage == KTQ_EXPERTS_NONE) continue;
        for (int p = 0; p < 3; ++p) {
            const std::string stacked = "blk." + std::to_string(l) + ".ffn_" + kProj[p] + "_exps.weight";
            for (int e = 0; e < le.num_experts; ++e) {
                const MatrixView v = expert(static_cast<int>(l), e, static_cast<ktq_expert_proj>(p));
                const std::string where = v.tensor + " (expert " + std::to_string(e) + ")";
                if (g.find(stacked))
                    place(v, stacked, static_cast<uint64_t>(e) * v.rows, v.rows * static_cast<uint64_t>(le.num_experts),
                          where);
                else
                    place(v, "blk." + std::to_string(l) + ".ffn_" + kProj[p] + "." + std::to_string(e) + ".weight", 0,
                          v.rows, where);
            }
        }
    }
}

void Model::read_gguf_rows(const GgufWeight &w, uint64_t first, uint64_t count, ktq_dtype out, void *dst) const {
    if (count == 0) return;
    // Both rearranged layouts keep heads whole, so only the heads rows [first, first + count) fall in are read.
    std::vector<float> rows;
    if (w.value) {  // DeepSeek's kv_b_proj, put back together from attn_k_b and attn_v_b
        const uint64_t kv_lora = w.value->ne[0], per_head = w.nope + w.v;
        const uint64_t h0 = first / per_head, h1 = (first + count - 1) / per_head + 1;
        std::vector<float> k_b((h1 - h0) * kv_lora * w.nope), v_b((h1 - h0) * w.v * kv_lora);
        gguf_file_->read_rows(*w.tensor, h0 * kv_lora, (h1 - h0) * kv_lora, k_b.data());
        gguf_file_->read_rows(*w.value, h0 * w.v, (h1 - h0) * w.v, v_b.data());
        rows.resize(count * kv_lora);
        for (uint64_t r = 0; r < count; ++r) {
            const uint64_t j = first + r, h = j / per_head - h0, i = j % per_head;
            float *dst_row = rows.data() + r * kv_lora;
            for (uint64_t c = 0; c < kv_lora; ++c)
                dst_row[c] = i < w.nope ? k_b[(h * kv_lora + c) * w.nope + i] : v_b[(h * w.v + (i - w.nope)) * kv_lora + c];
        }
    } else if (w.permute_heads) {
        // Row i of a head sits at 2i in the file for the first half of the head, at 2(i - half) + 1 for the second.
        const uint64_t cols = w.tensor->ne[0], head = w.rows / static_cast<uint64_t>(w.permute_heads), half = head / 2;
        const uint64_t h0 = first / head, h1 = (first + count - 1) / head + 1;
        std::vector<float> heads((h1 - h0) * head * cols);
        gguf_file_->read_rows(*w.tensor, w.first_row + h0 * head, (h1 - h0) * head, heads.data());
        rows.resize(count * cols);
        for (uint64_t r = 0; r < count; ++r) {
            const uint64_t j = first + r, h = j / head - h0, i = j % head;
            const uint64_t in_file = h * head + (i < half ? 2 * i : 2 * (i - half) + 1);
            std::copy_n(heads.begin() + static_cast<std::ptrdiff_t>(in_file * cols), cols,
                        rows.begin() + static_cast<std::ptrdiff_t>(r * cols));
        }
    } else {
        rows.resize(count * w.tensor->ne[0]);
        gguf_file_->read_rows(*w.tensor, w.first_row + first, count, rows.data());
    }
    if (out == KTQ_DTYPE_F32)
        std::copy(rows.begin(), rows.end(), static_cast<float *>(dst));
    else
        convert_to_bf16(static_cast<uint16_t *>(dst), reinterpret_cast<const uint8_t *>(rows.data()), KTQ_DTYPE_F32,
                        rows.size());
}

const nlohmann::ordered_json &Model::quantization_config_json() const {
    return config_.has_text_config && config_.raw.at("text_config").contains("quantization_config")
               ? config_.raw.at("text_config").at("quantization_config")
               : config_.raw.at("quantization_config");
}

void Model::open_packed_weights() {
    if (config_.quantization.quant_method != "compressed-tensors") return;
    // Integer weight-only schemes stored "pack-quantized" (what llm-compressor
    // and ktq write for W4A16 / W8A16): each X.weight becomes a virtual tensor.
    const nlohmann::ordered_json &raw = quantization_config_json();
    const std::string where = checkpoint_->dir() + "/config.json: quantization_config";
    std::string format = raw.value("format", "");
    if (raw.contains("config_groups") && raw["config_groups"].is_object())
        for (const auto &[name, group] : raw["config_groups"].items()) {
            if (group.is_object() && group.contains("format") && group["format"].is_string())
                format = group["format"].get<std::string>();
            if (group.is_object() && group.contains("input_activations") && !group["input_activations"].is_null())
                fail(KTQ_ERR_UNSUPPORTED, where + ": group " + name + " quantizes activations; ktq reads "
                                              "weight-only compressed-tensors checkpoints (W4A16, W8A16, ...)");
        }
    if (format != "pack-quantized")
        fail(KTQ_ERR_UNSUPPORTED, where + ": compressed-tensors format \"" + format +
                                      "\" is not read (only \"pack-quantized\")");
    const std::string suffix = ".weight_packed";
    const std::vector<std::string> names = checkpoint_->names();  // copy: add_virtual edits the list
    for (const std::string &name : names) {
        if (!ends_with(name, suffix)) continue;
        const std::string base = name.substr(0, name.size() - suffix.size());
        PackedWeight w;
        w.packed = checkpoint_->find(name);
        w.scale = checkpoint_->find(base + ".weight_scale");
        w.zero_point = checkpoint_->find(base + ".weight_zero_point");
        const TensorRef *shape = checkpoint_->find(base + ".weight_shape");
        const std::string file = w.packed->file->display_name();
        auto bad = [&](const std::string &why) {
            fail(KTQ_ERR_FORMAT, file + ": compressed-tensors weight '" + base + "': " + why);
        };
        if (!w.scale || !shape) bad("weight_scale or weight_shape is missing");
        const TensorEntry &pe = *w.packed->entry, &se = *w.scale->entry, &she = *shape->entry;
        if (pe.dtype != KTQ_DTYPE_I32 || pe.shape.size() != 2) bad("weight_packed is not a 2-D I32 tensor");
        if (she.dtype != KTQ_DTYPE_I64 || she.numel() != 2) bad("weight_shape is not two I64 values");
        int64_t dims[2];
        shape->file->copy_out(shape->file->data(she), sizeof dims, dims);
        if (dims[0] <= 0 || dims[1] <= 0 || dims[0] != pe.shape[0]) bad("weight_shape does not match weight_packed");
        w.rows = static_cast<uint64_t>(dims[0]);
        w.cols = static_cast<uint64_t>(dims[1]);
        if (se.shape.size() != 2 || static_cast<uint64_t>(se.shape[0]) != w.rows || se.shape[1] <= 0 ||
            w.cols % static_cast<uint64_t>(se.shape[1]) != 0)
            bad("weight_scale is not [rows, groups] with groups dividing the columns");
        if (se.dtype != KTQ_DTYPE_BF16 && se.dtype != KTQ_DTYPE_F16 && se.dtype != KTQ_DTYPE_F32)
            bad(std::string("weight_scale has dtype ") + dtype_name(se.dtype));
        w.scheme.dtype = se.dtype;
        const uint64_t groups = static_cast<uint64_t>(se.shape[1]);
        w.scheme.group_size = groups == 1 ? -1 : static_cast<int>(w.cols / groups);
        w.scheme.symmetric = w.zero_point == nullptr;
        w.scheme.bits = 0;
        for (int b = 8; b >= 2; --b)  // the widest bit count that packs the columns into this many words
            if (ceil_div(w.cols * static_cast<uint64_t>(b), 32) == static_cast<uint64_t>(pe.shape[1])) {
                w.scheme.bits = b;
                break;
            }
        if (w.scheme.bits == 0) bad("weight_packed has " + std::to_string(pe.shape[1]) + " words per row for " +
                                    std::to_string(w.cols) + " columns: no bit width 2..8 fits");
        if (auto p = ct::scheme_problem(w.scheme); !p.empty()) bad(p);
        if (w.zero_point) {
            const TensorEntry &ze = *w.zero_point->entry;
            if (ze.dtype != KTQ_DTYPE_I32 || ze.shape.size() != 2 ||
                static_cast<uint64_t>(ze.shape[0]) != ct::zero_point_words(w.scheme, w.rows) ||
                static_cast<uint64_t>(ze.shape[1]) != groups)
                bad("weight_zero_point is not I32 [ceil(rows * bits / 32), groups]");
        }
        const uint64_t need = w.rows * ct::packed_words_per_row(w.scheme, w.cols) * 4;
        if (pe.nbytes() != need) bad("weight_packed holds " + std::to_string(pe.nbytes()) + " bytes, needs " + std::to_string(need));
        TensorEntry v;
        v.name = base + ".weight";
        v.dtype = se.dtype;
        v.shape = {dims[0], dims[1]};
        v.begin = 0;
        v.end = w.rows * w.cols * dtype_size(se.dtype);  // the logical size
        std::vector<std::string> hidden = {name, base + ".weight_scale", base + ".weight_shape"};
        if (w.zero_point) hidden.push_back(base + ".weight_zero_point");
        checkpoint_->add_virtual(v, w.packed->file, hidden);
        packed_[v.name] = w;
    }
}

void Model::open_awq_weights() {
    if (config_.quantization.quant_method != "awq") return;
    const nlohmann::ordered_json &raw = quantization_config_json();
    const std::string where = checkpoint_->dir() + "/config.json: quantization_config";
    auto number = [&](const char *a, const char *b, int fallback) {
        for (const char *k : {a, b})
            if (raw.contains(k) && raw[k].is_number_integer()) return raw[k].get<int>();
        return fallback;
    };
    const int bits = number("bits", "w_bit", 4), group = number("group_size", "q_group_size", 128);
    const std::string version = raw.contains("version") && raw["version"].is_string() ? raw["version"].get<std::string>() : "gemm";
    std::string lower = version;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower != "gemm")
        fail(KTQ_ERR_UNSUPPORTED, where + ": AWQ version \"" + version + "\" is not read (only \"gemm\", AutoAWQ's "
                                                                        "default packing)");
    if (bits != 4) fail(KTQ_ERR_UNSUPPORTED, where + ": AWQ with " + std::to_string(bits) + " bits (only 4 is read)");
    if (raw.contains("zero_point") && raw["zero_point"].is_boolean() && !raw["zero_point"].get<bool>())
        fail(KTQ_ERR_UNSUPPORTED, where + ": AWQ without zero points is not read");
    if (group <= 0) fail(KTQ_ERR_UNSUPPORTED, where + ": AWQ group_size " + std::to_string(group) + " (only > 0)");
    const std::string suffix = ".qweight";
    const std::vector<std::string> names = checkpoint_->names();  // copy: add_virtual edits the list
    for (const std::string &name : names) {
        if (!ends_with(name, suffix)) continue;
        const std::string base = name.substr(0, name.size() - suffix.size());
        PackedWeight w;
        w.awq = true;
        w.packed = checkpoint_->find(name);
        w.zero_point = checkpoint_->find(base + ".qzeros");
        w.scale = checkpoint_->find(base + ".scales");
        const std::string file = w.packed->file->display_name();
        auto bad = [&](const std::string &why) { fail(KTQ_ERR_FORMAT, file + ": AWQ weight '" + base + "': " + why); };
        if (!w.zero_point || !w.scale) bad("qzeros or scales is missing");
        const TensorEntry &qe = *w.packed->entry, &ze = *w.zero_point->entry, &se = *w.scale->entry;
        if (qe.dtype != KTQ_DTYPE_I32 || qe.shape.size() != 2 || qe.shape[0] <= 0 || qe.shape[1] <= 0)
            bad("qweight is not a 2-D I32 tensor [in, out / 8]");
        w.cols = static_cast<uint64_t>(qe.shape[0]);
        w.rows = static_cast<uint64_t>(qe.shape[1]) * 8;
        if (w.cols % static_cast<uint64_t>(group) != 0)
            bad(std::to_string(w.cols) + " input features are not a multiple of group_size " + std::to_string(group));
        const int64_t groups = static_cast<int64_t>(w.cols / static_cast<uint64_t>(group));
        if (se.dtype != KTQ_DTYPE_F16 && se.dtype != KTQ_DTYPE_BF16 && se.dtype != KTQ_DTYPE_F32)
            bad(std::string("scales has dtype ") + dtype_name(se.dtype));
        if (se.shape != std::vector<int64_t>{groups, static_cast<int64_t>(w.rows)})
            bad("scales is not [in / group_size, out] = [" + std::to_string(groups) + ", " + std::to_string(w.rows) + "]");
        if (ze.dtype != KTQ_DTYPE_I32 || ze.shape != std::vector<int64_t>{groups, qe.shape[1]})
            bad("qzeros is not I32 [in / group_size, out / 8] = [" + std::to_string(groups) + ", " +
                std::to_string(qe.shape[1]) + "]");
        w.scheme.bits = 4;
        w.scheme.group_size = group;
        w.scheme.symmetric = false;
        w.scheme.dtype = se.dtype;
        TensorEntry v;
        v.name = base + ".weight";
        v.dtype = se.dtype;
        v.shape = {static_cast<int64_t>(w.rows), static_cast<int64_t>(w.cols)};
        v.begin = 0;
        v.end = w.rows * w.cols * dtype_size(se.dtype);  // the logical size
        checkpoint_->add_virtual(v, w.packed->file, {name, base + ".qzeros", base + ".scales"});
        packed_[v.name] = w;
    }
}

bool Model::awq_stored(const std::string &tensor, AwqStored *out) const {
    auto it = packed_.find(tensor);
    if (it == packed_.end() || !it->second.awq) return false;
    const PackedWeight &w = it->second;
    *out = {w.packed, w.zero_point, w.scale, w.rows, w.cols, static_cast<uint64_t>(w.scheme.group_size)};
    return true;
}

void Model::read_awq_rows(const PackedWeight &w, uint64_t first, uint64_t count, ktq_dtype out, void *dst) const {
    // Output channel c sits in word c / 8 of each input row, at AutoAWQ's interleaved nibble.
    const uint64_t words_per_row = w.rows / 8, w0 = first / 8, w1 = (first + count + 7) / 8, nw = w1 - w0;
    const uint64_t group = static_cast<uint64_t>(w.scheme.group_size), groups = w.cols / group;
    auto read_words = [&](const TensorRef &ref, uint64_t rows, std::vector<uint32_t> &buf) {
        buf.resize(rows * nw);
        const uint8_t *base = ref.file->data(*ref.entry);
        for (uint64_t r = 0; r < rows; ++r)
            ref.file->copy_out(base + (r * words_per_row + w0) * 4, nw * 4, buf.data() + r * nw);
    };
    std::vector<uint32_t> q, z;
    read_words(*w.packed, w.cols, q);
    read_words(*w.zero_point, groups, z);
    const TensorEntry &se = *w.scale->entry;
    const size_t ssize = dtype_size(se.dtype);
    std::vector<uint8_t> sraw(groups * count * ssize);
    const uint8_t *sbase = w.scale->file->data(se);
    for (uint64_t g = 0; g < groups; ++g)
        w.scale->file->copy_out(sbase + (g * w.rows + first) * ssize, count * ssize, sraw.data() + g * count * ssize);
    std::vector<float> scales(groups * count);
    convert_to_f32(scales.data(), sraw.data(), se.dtype, scales.size());
    auto nibble = [&](const std::vector<uint32_t> &buf, uint64_t row, uint64_t c) {
        const uint32_t word = buf[row * nw + (c / 8 - w0)];
        return static_cast<int>((word >> (4 * kt_awq::awq_nibble_of_column(c))) & 15u);
    };
    std::vector<float> values(count * w.cols);
    for (uint64_t r = 0; r < count; ++r) {
        const uint64_t c = first + r;  // the output channel
        for (uint64_t i = 0; i < w.cols; ++i) {
            const uint64_t g = i / group;
            const float v = static_cast<float>(nibble(q, i, c) - nibble(z, g, c)) * scales[g * count + r];
            values[r * w.cols + i] = v;
        }
    }
    ct::round_to_dtype(se.dtype, values.data(), values.size());  // the product in the scales' dtype, as torch computes it
    if (out == KTQ_DTYPE_F32)
        std::copy(values.begin(), values.end(), static_cast<float *>(dst));
    else
        convert_to_bf16(static_cast<uint16_t *>(dst), reinterpret_cast<const uint8_t *>(values.data()), KTQ_DTYPE_F32,
                        values.size());
}

void Model::open_kt_experts(const std::string &dir) {
    kt_output_ = std::make_unique<KtOutput>(dir);
    std::map<std::tuple<int, int, int>, std::vector<const KtPart *>> groups;  // (layer, expert, proj) -> parts
    for (const KtPart &p : kt_output_->parts()) groups[{p.layer, p.expert, p.proj}].push_back(&p);
    for (auto &[key, parts] : groups) {
        const auto [layer, expert, proj] = key;
        const KtPart &first = *parts.front();
        const std::string where = dir + ": " + first.name;
        if (layer < 0 || layer >= static_cast<int>(arch_.layers.size()) || expert < 0 ||
            expert >= arch_.layers[static_cast<size_t>(layer)].num_experts)
            fail(KTQ_ERR_FORMAT, where + ": the checkpoint has no such routed expert (a kt output of another model?)");
        std::sort(parts.begin(), parts.end(), [](const KtPart *a, const KtPart *b) { return a->part < b->part; });
        const MatrixView v = this->expert(layer, expert, static_cast<ktq_expert_proj>(proj));
        KtExpert e;
        e.parts = parts;
        e.split_cols = proj == KTQ_PROJ_DOWN;  // kt-kernel splits the intermediate features over NUMA parts
        e.rows = e.split_cols ? first.rows : 0;
        e.cols = e.split_cols ? 0 : first.cols;
        for (size_t i = 0; i < parts.size(); ++i) {
            const KtPart &p = *parts[i];
            if (p.part != static_cast<int>(i) || (e.split_cols ? p.rows != e.rows : p.cols != e.cols))
                fail(KTQ_ERR_FORMAT, dir + ": " + p.name + ": NUMA parts of one expert are missing or disagree in shape");
            if (e.split_cols)
                e.cols += p.cols;
            else
                e.rows += p.rows;
        }
        if (e.rows != v.rows || e.cols != v.cols)
            fail(KTQ_ERR_FORMAT, where + ": the kt expert is " + std::to_string(e.rows) + " x " + std::to_string(e.cols) +
                                     ", the checkpoint's '" + v.tensor + "' " + std::to_string(v.rows) + " x " +
                                     std::to_string(v.cols) + " (a kt output of another model?)");
        kt_[{v.tensor, v.row_begin}] = std::move(e);
    }
}

void Model::read_kt_rows(const KtExpert &e, uint64_t first, uint64_t count, ktq_dtype out, void *dst) const {
    // The whole expert, dequantized part by part into its place.
    std::vector<float> all(e.rows * e.cols), part;
    uint64_t offset = 0;
    for (const KtPart *p : e.parts) {
        part.resize(p->rows * p->cols);
        kt_output_->dequantize(*p, part.data());
        for (uint64_t r = 0; r < p->rows; ++r)
            std::copy(part.begin() + static_cast<std::ptrdiff_t>(r * p->cols),
                      part.begin() + static_cast<std::ptrdiff_t>((r + 1) * p->cols),
                      all.begin() + static_cast<std::ptrdiff_t>(e.split_cols ? r * e.cols + offset : (offset + r) * e.cols));
        offset += e.split_cols ? p->cols : p->rows;
    }
    const float *src = all.data() + first * e.cols;
    if (out == KTQ_DTYPE_F32)
        std::copy(src, src + count * e.cols, static_cast<float *>(dst));
    else
        convert_to_bf16(static_cast<uint16_t *>(dst), reinterpret_cast<const uint8_t *>(src), KTQ_DTYPE_F32, count * e.cols);
}

void Model::read_packed_rows(const PackedWeight &w, uint64_t first, uint64_t count, ktq_dtype out, void *dst) const {
    if (w.awq) {
        read_awq_rows(w, first, count, out, dst);
        return;
    }
    const ct::Scheme &s = w.scheme;
    const uint64_t words = ct::packed_words_per_row(s, w.cols), groups = ct::groups_per_row(s, w.cols);
    std::vector<uint32_t> packed(count * words);
    w.packed->file->copy_out(w.packed->file->data(*w.packed->entry) + first * words * 4, packed.size() * 4, packed.data());
    const size_t ssize = dtype_size(s.dtype);
    std::vector<uint8_t> scales(count * groups * ssize);
    w.scale->file->copy_out(w.scale->file->data(*w.scale->entry) + first * groups * ssize, scales.size(), scales.data());
    std::vector<int8_t> zp;
    if (w.zero_point) {  // packed along the rows: unpack the whole column set, keep ours
        const TensorEntry &ze = *w.zero_point->entry;
        std::vector<uint32_t> zpacked(ze.nbytes() / 4);
        w.zero_point->file->copy_out(w.zero_point->file->data(ze), ze.nbytes(), zpacked.data());
        std::vector<int8_t> all(w.rows * groups);
        ct::unpack_zero_points(s, zpacked.data(), w.rows, groups, all.data());
        zp.assign(all.begin() + static_cast<std::ptrdiff_t>(first * groups),
                  all.begin() + static_cast<std::ptrdiff_t>((first + count) * groups));
    }
    std::vector<float> values(count * w.cols);
    ct::dequantize_rows(s, packed.data(), scales.data(), zp.empty() ? nullptr : zp.data(), count, w.cols, values.data());
    if (out == KTQ_DTYPE_F32)
        std::copy(values.begin(), values.end(), static_cast<float *>(dst));
    else
        convert_to_bf16(static_cast<uint16_t *>(dst), reinterpret_cast<const uint8_t *>(values.data()), KTQ_DTYPE_F32,
                        values.size());
}

void Model::check_not_quantized() const {
    const std::string &method = config_.quantization.quant_method;
    if (!method.empty() && method != "fp8" && !((method == "compressed-tensors" || method == "awq") && !packed_.empty()))
        fail(KTQ_ERR_UNSUPPORTED, checkpoint_->dir() + "/config.json: checkpoint is already quantized "
                                  "(quantization_config.quant_method = \"" + method +
                                  "\"); ktq reads BF16/FP16/FP32 or block-FP8 checkpoints");
    for (const auto &name : checkpoint_->names()) {  // packed weights read by open_packed_weights() are no longer listed
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
    if (!gguf_.empty())
        if (auto g = gguf_.find({view.tensor, view.row_begin}); g != gguf_.end()) {
            if (first + count > view.rows) fail(KTQ_ERR_INVALID_ARGUMENT, "row range outside tensor '" + view.tensor + "'");
            // A fused expert tensor read whole: the GGUF file holds it expert by expert.
            if (first + count > g->second.rows)
                fail(KTQ_ERR_UNSUPPORTED, "'" + view.tensor + "' holds several experts; over GGUF weights read it "
                                          "one expert at a time");
            read_gguf_rows(g->second, first, count, out, dst);
            return;
        }
    if (!kt_.empty())
        if (auto kt = kt_.find({view.tensor, view.row_begin}); kt != kt_.end()) {
            if (first + count > view.rows) fail(KTQ_ERR_INVALID_ARGUMENT, "row range outside tensor '" + view.tensor + "'");
            read_kt_rows(kt->second, first, count, out, dst);
            return;
        }
    if (auto packed = packed_.find(view.tensor); packed != packed_.end()) {
        if (first + count > view.rows) fail(KTQ_ERR_INVALID_ARGUMENT, "row range outside tensor '" + view.tensor + "'");
        read_packed_rows(packed->second, view.row_begin + first, count, out, dst);
        return;
    }
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
    if (auto p = packed_.find(tensor); p != packed_.end())
        return p->second.packed->entry->nbytes() + p->second.scale->entry->nbytes() +
               (p->second.zero_point ? p->second.zero_point->entry->nbytes() : 0);
    const TensorEntry &e = *checkpoint_->at(tensor).entry;
    uint64_t bytes = e.nbytes();
    if (e.dtype == KTQ_DTYPE_F8_E4M3 || e.dtype == KTQ_DTYPE_F8_E5M2)
        if (const TensorRef *scale = fp8_scale_of(tensor)) bytes += scale->entry->nbytes();
    return bytes;
}

void Model::release(const std::string &tensor) const {
    if (auto p = packed_.find(tensor); p != packed_.end()) {
        for (const TensorRef *r : {p->second.packed, p->second.scale, p->second.zero_point})
            if (r) r->file->release(r->entry->begin, r->entry->end);
        return;
    }
    const TensorRef &ref = checkpoint_->at(tensor);
    ref.file->release(ref.entry->begin, ref.entry->end);
    if (const TensorRef *scale = fp8_scale_of(tensor)) scale->file->release(scale->entry->begin, scale->entry->end);
}

}  // namespace ktq
