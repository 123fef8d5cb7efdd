#include "engines/awq_engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "cuda/cuda_devices.h"
#include "cuda/cuda_matmul.h"
#include "engines/cast_engine.h"
#include "engines/ct_layer_outputs.h"
#include "engines/gguf_engine.h"
#include "engines/recorded_rows.h"
#include "forward/decoder_layer.h"
#include "forward/layer_weights.h"
#include "quant/ct_rtn.h"
#include "reading/dtype.h"
#include "runtime/error.h"

namespace ktq {

namespace {

// The inputs of chosen Linears over every calibration batch, one buffer per
// slot (Linears reading the same activations share a slot and the
// activations are stored once).
class InputRecorder : public ActivationObserver {
public:
    // in_files: every slot keeps its rows in a temporary file (a host memory limit they would not fit under).
    explicit InputRecorder(bool in_files) : in_files_(in_files) {}
    struct Slot {
        int64_t in = 0;
        RecordedRows rows;  // [n, in]
        int64_t count() const { return in > 0 ? static_cast<int64_t>(rows.size()) / in : 0; }
    };
    // Linears in one call share one slot.
    Slot *add_slot(std::initializer_list<const Linear *> readers) {
        slots_.push_back(std::make_unique<Slot>());
        if (in_files_) slots_.back()->rows.use_file(kWhat);
        for (const Linear *l : readers)
            if (l && !l->empty()) slot_of_[l] = slots_.back().get();
        return slots_.back().get();
    }
    // The routed experts' all-token inputs: the MoE input, into `slot`.
    void set_expert_slot(Slot *slot) { experts_ = slot; }
    void forget() { last_.clear(); }

    void observe(const Linear &linear, const float *x, int64_t rows) override {
        auto it = slot_of_.find(&linear);
        if (it != slot_of_.end()) take(it->second, x, rows, linear.in);
    }
    bool observe_expert_all_tokens(const ExpertWeights &e, const float *x, int64_t rows) override {
        if (experts_) take(experts_, x, rows, e.gate.in);
        return true;  // the recorder needs only the input: the all-token products are skipped
    }
    // A routed expert's down inputs for the tokens the router sent it (blended expert calibration).
    void record_routed(const Linear &down) {
        Slot &s = routed_[&down];
        if (in_files_) s.rows.use_file(kWhat);
    }
    Slot *routed(const Linear &down) {
        auto it = routed_.find(&down);
        return it == routed_.end() ? nullptr : &it->second;
    }
    void observe_routed(const Linear &linear, const float *x, int64_t rows) override {
        auto it = routed_.find(&linear);
        if (it == routed_.end()) return;
        it->second.in = linear.in;
        it->second.rows.append(x, static_cast<size_t>(rows * linear.in));
    }

private:
    void take(Slot *s, const float *x, int64_t rows, int64_t in) {
        auto [seen, added] = last_.try_emplace(s, x, rows);
        if (!added && seen->second == std::make_pair(x, rows)) return;  // a sibling already stored it
        seen->second = {x, rows};
        s->in = in;
        s->rows.append(x, static_cast<size_t>(rows * in));
    }
    static constexpr const char *kWhat = "AWQ's recorded inputs";
    const bool in_files_;
    std::vector<std::unique_ptr<Slot>> slots_;
    std::map<const Linear *, Slot *> slot_of_;
    std::map<const Slot *, std::pair<const float *, int64_t>> last_;
    Slot *experts_ = nullptr;
    std::map<const Linear *, Slot> routed_;
};

bool is_float_type(int t) { return t == KTQ_GGML_F32 || t == KTQ_GGML_F16 || t == KTQ_GGML_BF16; }

Linear &expert_linear(ExpertWeights &e, int proj) {
    return proj == KTQ_PROJ_GATE ? e.gate : proj == KTQ_PROJ_UP ? e.up : e.down;
}

// A GGUF plan's quantized Linears and their block types. kv_b_proj is left
// out: its GGUF parts (attn_k_b transposed, attn_v_b) are blocked along
// other axes than the input channels the scales act on.
std::map<const Linear *, awq::RoundTrip> gguf_round_trips(Writer &writer, int layer, LayerWeights &w) {
    std::map<std::string, Linear *> by_tensor;
    for (Linear *l : w.quantizable()) by_tensor[l->name + ".weight"] = l;
    std::map<const Linear *, awq::RoundTrip> out;
    for (const OutputTensor *t : writer.tensors_of_layer(layer)) {
        if (t->gguf_mla_part || is_float_type(t->gguf_type)) continue;
        const GgmlTypeTraits *tr = ggml_traits(static_cast<ktq_ggml_type>(t->gguf_type));
        if (!tr) fail(KTQ_ERR_INTERNAL, "GGUF plan has no ggml type for '" + t->name + "'");
        std::vector<Linear *> ls;
        if (t->gguf_stacked_experts) {
            for (ExpertWeights &e : w.experts) ls.push_back(&expert_linear(e, t->proj));
        } else if (t->expert >= 0) {
            if (t->expert >= static_cast<int>(w.experts.size()))
                fail(KTQ_ERR_INTERNAL, "GGUF plan: '" + t->name + "' names a missing expert");
            ls.push_back(&expert_linear(w.experts[static_cast<size_t>(t->expert)], t->proj));
        } else {
            auto it = by_tensor.find(t->source);
            if (it == by_tensor.end()) continue;  // not a Linear the search balances (router, ...)
            ls.push_back(it->second);
        }
        for (Linear *l : ls) out[l] = {nullptr, tr};
    }
    return out;
}

// A mapping's input statistics when they are not those of one set of rows: the blended routed / all-token
// calibration of a routed expert's down (per-token mean |x| and Gram matrix).
struct InputStats {
    std::vector<float> x_mean, gram;
    int64_t routed_rows = -1;
};

// KTQ_AWQ_TIMING=1 prints where each layer's time goes (stderr): seconds per phase.
class PhaseTimes {
public:
    PhaseTimes() : on_(std::getenv("KTQ_AWQ_TIMING") != nullptr) {}
    // Runs fn, adding its time to `phase`.
    template <class Fn>
    auto time(const char *phase, Fn &&fn) {
        const auto t0 = std::chrono::steady_clock::now();
        struct Add {
            PhaseTimes *self;
            const char *phase;
            std::chrono::steady_clock::time_point t0;
            ~Add() { self->add(phase, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()); }
        } add{this, phase, t0};
        return fn();
    }
    void print(int layer) const {
        if (!on_) return;
        std::fprintf(stderr, "AWQ layer %d:", layer);
        for (const auto &[phase, seconds] : seconds_) std::fprintf(stderr, " %s %.2f s;", phase.c_str(), seconds);
        std::fprintf(stderr, "\n");
    }

private:
    void add(const char *phase, double seconds) {
        if (on_) seconds_[phase] += seconds;
    }
    bool on_;
    std::map<std::string, double> seconds_;
};

}  // namespace

MatmulBackend *AwqEngine::gpu(const ktq_quantize_options &opts) {
    if (!cuda_) return nullptr;
    if (!gpu_) {
        const int device = opts.devices && opts.device_count > 0 ? opts.devices[0] : 0;
        size_t free_b = 0, total_b = 0;
        if (device < 0 || !cuda_memory_info(device, &free_b, &total_b))
            fail(KTQ_ERR_UNSUPPORTED, "AWQ on the GPU: CUDA device " + std::to_string(device) +
                                          " is not usable (check --devices, CUDA_VISIBLE_DEVICES; or --device cpu)");
        // Weights kept on the device: half of the budget (the rest: activations and results of one product).
        const size_t cache = opts.max_device_memory > 0 ? static_cast<size_t>(opts.max_device_memory) / 2 : 0;
        gpu_ = make_cuda_matmul(device, cache);
    }
    gpu_->forget();  // the last layer's weights: their addresses may come back with this layer's values
    return gpu_.get();
}

void AwqEngine::process(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                        const ktq_quantize_options &opts, const TensorDoneFn &on_tensor, bool write) {
    const ForwardConfig &cfg = cal_.cfg();
    MatmulBackend *const gpu = this->gpu(opts);
    PhaseTimes times;
    const auto layer_start = std::chrono::steady_clock::now();
    awq::Options ao;
    ao.grid = opts.awq_grid;
    ao.duo_scaling = opts.awq_duo_scaling != 0;
    awq::grid(ao);  // checks the grid size up front, also for layers that quantize nothing
    check_moe_calibration_options(opts);
    LayerWeights w = load_layer(model, cfg, layer);
    // Routed experts' down searched on their routed tokens blended with all tokens (else all tokens alone).
    const bool blend = w.moe && opts.moe_hessian == KTQ_MOE_HESSIAN_BLEND;
    // The recorded inputs (attention input, MLA's q_b / kv_b inputs, o's input, MLP input, down's input for the
    // dense and shared MLPs, each routed expert's down inputs) and what the searches hold beside them (the
    // parent's reference output, and in the per-expert loop two [tokens, moe_intermediate] products). Under a
    // host memory limit they would not fit under, the recorded inputs go to temporary files.
    bool recorded_in_files = false;
    {
        const uint64_t t = cal_.tokens();
        auto width = [](const Linear &l) { return l.empty() ? uint64_t{0} : static_cast<uint64_t>(l.in); };
        uint64_t recorded = static_cast<uint64_t>(2 * cfg.hidden) + width(w.q_b) + width(w.kv_b) + width(w.o) +
                            width(w.down) + width(w.shared.down);
        if (blend) recorded += static_cast<uint64_t>(cfg.top_k) * static_cast<uint64_t>(cfg.moe_intermediate);
        uint64_t working = static_cast<uint64_t>(cfg.hidden);
        if (w.moe) working += 2 * static_cast<uint64_t>(cfg.moe_intermediate);
        const uint64_t weights = layer_float_bytes(w), batch = cal_.batch_bytes(opts.calibration_batch);
        const std::string tokens = std::to_string(t) + " tokens";
        recorded_in_files = opts.max_host_memory > 0 &&
                            weights + batch + t * (recorded + working) * sizeof(float) > opts.max_host_memory;
        std::vector<std::pair<std::string, uint64_t>> parts = {{"layer weights", weights}};
        if (recorded_in_files)
            parts.emplace_back("search buffers (" + tokens + "; the recorded inputs, " +
                                   std::to_string((t * recorded * sizeof(float) + (1u << 20) - 1) >> 20) +
                                   " MiB, in a temporary file)",
                               t * working * sizeof(float));
        else
            parts.emplace_back("recorded inputs (" + tokens + ")", t * (recorded + working) * sizeof(float));
        parts.emplace_back("one batch", batch);
        cal_.check_layer_memory(opts, "AWQ", layer, parts);
        if (recorded_in_files) recorded_to_file_.insert(layer);
    }

    // Which Linears the plan quantizes, and how. Compressed-tensors: the outputs made from each Linear; GGUF:
    // every tensor of the layer goes through the GGUF engine, with the values computed here.
    const bool gguf = writes_gguf(writer, layer);
    if (gguf && opts.awq_clip)
        fail(KTQ_ERR_UNSUPPORTED, "AWQ's clipping search is built for compressed-tensors groups; leave it off for "
                                  "GGUF output");
    CtLayerOutputs outputs;
    std::map<const Linear *, awq::RoundTrip> quant;
    if (gguf) {
        quant = gguf_round_trips(writer, layer, w);
    } else {
        outputs = ct_layer_outputs(writer, layer, w, cfg.family, "AWQ");
        for (const auto &[l, o] : outputs.targets) quant[l] = {&o.packed->ct_scheme, nullptr};
    }
    auto &targets = outputs.targets;
    const std::vector<const OutputTensor *> &copies = outputs.copies;
    // The model's dtype: the weights' arithmetic after scaling (as torch does it in that dtype). GGUF keeps
    // float32 (llama.cpp quantizes from it).
    ktq_dtype dtype = gguf ? KTQ_DTYPE_F32 : KTQ_DTYPE_BF16;
    for (const auto &[l, o] : targets)
        if (o.packed) {
            dtype = o.packed->ct_scheme.dtype;
            break;
        }
    auto quant_of = [&](const Linear *l) -> const awq::RoundTrip * {
        auto it = quant.find(l);
        return it == quant.end() ? nullptr : &it->second;
    };
    auto scheme_of = [&](const Linear *l) -> const ct::Scheme * {
        const awq::RoundTrip *q = quant_of(l);
        return q ? q->ct : nullptr;
    };

    // 1. Calibration forward: the inputs of each mapping's Linears.
    InputRecorder rec(recorded_in_files);
    const bool mla = cfg.mla;
    InputRecorder::Slot *attn_in =
        mla ? rec.add_slot({&w.q_a, &w.q, &w.kv_a}) : rec.add_slot({&w.q, &w.k, &w.v});
    InputRecorder::Slot *q_b_in = rec.add_slot({&w.q_b});
    InputRecorder::Slot *kv_b_in = rec.add_slot({&w.kv_b});
    InputRecorder::Slot *o_in = rec.add_slot({&w.o});
    InputRecorder::Slot *mlp_in = rec.add_slot({&w.gate, &w.up, &w.shared.gate, &w.shared.up});
    rec.set_expert_slot(mlp_in);
    InputRecorder::Slot *down_in = rec.add_slot({&w.down});
    InputRecorder::Slot *shared_down_in = rec.add_slot({&w.shared.down});
    if (blend)
        for (const ExpertWeights &e : w.experts) rec.record_routed(e.down);
    std::vector<uint64_t> &counts = cal_.expert_tokens(layer);
    ForwardContext ctx;
    ctx.cfg = &cfg;
    ctx.pool = &pool;
    ctx.observer = &rec;
    ctx.expert_tokens = w.moe ? &counts : nullptr;
    ctx.matmul = gpu;
    std::vector<std::pair<int64_t, int64_t>> batch_shapes;  // (sequences, length) of each forward call, in order
    times.time("1 calibration forward", [&] {
        cal_.for_each_batch(opts.calibration_batch, false, [&](float *x, int64_t seqs, int64_t len) {
            rec.forget();
            forward_layer(ctx, w, x, seqs, len);
            batch_shapes.emplace_back(seqs, len);
        });
    });
    ForwardContext plain;  // the parents' forward in the search: nothing observed or counted
    plain.cfg = &cfg;
    plain.pool = &pool;
    plain.matmul = gpu;
    // A weight the folds change in place, or a buffer freed and maybe reallocated at its address: the GPU's
    // copy must go.
    auto changed = [&](const float *weight) {
        if (gpu) gpu->forget(weight);
    };

    // 2. The mappings, in order. `modified` collects every kept tensor whose
    //    values the folds change (written from these values below).
    std::map<std::string, const std::vector<float> *> modified;
    std::map<const Linear *, std::vector<float>> expert_down_grams;  // for the clipping search
    const std::string p = cfg.layer_prefix(layer);
    auto round = [&](std::vector<float> &v) { ct::round_to_dtype(dtype, v.data(), v.size()); };
    std::set<const float *> scaled;  // every Linear weight and bias the folds changed (GGUF: all must be written)
    auto scale_columns = [&](Linear &l, const std::vector<float> &s) {
        for (int64_t r = 0; r < l.out; ++r)
            for (int64_t c = 0; c < l.in; ++c) l.w[static_cast<size_t>(r * l.in + c)] *= s[static_cast<size_t>(c)];
        round(l.w);
        changed(l.w.data());
        scaled.insert(l.w.data());
        if (!targets.count(&l)) modified[l.name + ".weight"] = &l.w;
    };
    // The module whose output error a mapping's search measures, as llm-compressor takes the lowest common
    // parent of the balance layers: the Linears themselves (one), the attention block, or the MLP / MoE block.
    enum class Parent { Linears, Attention, Mlp };
    auto smooth = [&](const std::string &name, std::vector<InputRecorder::Slot *> inputs, std::vector<Linear *> balance,
                      std::vector<float> *norm, const std::string &norm_tensor, Linear *prev,
                      std::vector<Linear *> compensate, const float *x, int64_t rows, int64_t in,
                      Parent parent, const InputStats *given = nullptr) -> std::vector<float> {
        std::vector<awq::Balanced> layers;
        bool any_target = false;
        for (Linear *l : balance) {
            if (l->empty()) continue;
            if (l->in != in) fail(KTQ_ERR_FORMAT, "AWQ mapping " + name + ": " + l->name + " has the wrong input size");
            layers.push_back({l->w.data(), l->out, quant_of(l)});
            any_target |= quant_of(l) != nullptr;
        }
        if (!any_target || rows == 0) return {};
        const std::vector<float> x_mean = given ? given->x_mean : awq::abs_mean(x, rows, in);
        // The parent's output over all calibration rows, a piece at a time (attention: one forward batch;
        // MLP: kMlpChunk rows, so the products stay in cache and no large buffer is made per candidate).
        const int64_t kMlpChunk = gpu ? 16384 : 2048;  // the GPU: fewer, larger products
        auto for_each_piece = [&](const std::function<void(const std::vector<float> &, size_t)> &fn) {
            size_t at = 0;
            if (parent == Parent::Mlp) {
                for (int64_t r0 = 0; r0 < rows; r0 += kMlpChunk) {
                    const std::vector<float> o = mlp_block(plain, w, x + r0 * in, std::min(kMlpChunk, rows - r0));
                    fn(o, at);
                    at += o.size();
                }
                return;
            }
            int64_t offset = 0;
            for (const auto &[seqs, len] : batch_shapes) {
                const std::vector<float> o = attention_block(plain, w, x + offset * in, seqs, len);
                fn(o, at);
                at += o.size();
                offset += seqs * len;
            }
            if (offset != rows) fail(KTQ_ERR_INTERNAL, "AWQ: attention inputs do not match the calibration batches");
        };
        std::vector<float> gram, reference;
        // Parent losses: Q(W s) / s of each balance Linear, swapped in while the parent runs; the buffers serve
        // every candidate (a fresh gigabyte per candidate on a large MoE layer costs page faults).
        std::vector<std::pair<Linear *, std::vector<float>>> spare;
        if (parent != Parent::Linears)  // a Linear parent's loss fake-quantizes inside awq::linear_loss
            for (Linear *l : balance)
                if (!l->empty() && quant_of(l)) spare.emplace_back(l, std::vector<float>());
        awq::LossFn loss;
        if (parent == Parent::Linears) {
            if (given)
                gram = given->gram;  // already per token: the loss needs no row count
            else if (rows > in)
                times.time("2 input Gram", [&] { gram = awq::input_gram(x, rows, in, pool, gpu); });
            const int64_t loss_rows = given ? 1 : rows;
            loss = [&, loss_rows](const std::vector<float> &s) {
                return times.time("2 Linear loss",
                                  [&] { return awq::linear_loss(layers, in, x, loss_rows, gram, s, pool, gpu); });
            };
        } else {
            times.time("2 parent forward", [&] {
                for_each_piece([&](const std::vector<float> &o, size_t) { reference.insert(reference.end(), o.begin(), o.end()); });
            });
            loss = [&](const std::vector<float> &s) {
                for (auto &[l, q] : spare) {
                    q.resize(l->w.size());
                    times.time("2 fake quantization", [&, l = l, &q = q] {
                        awq::fake_quantize_scaled(*quant_of(l), l->w.data(), l->out, l->in, s.data(), q.data(), pool);
                    });
                    std::swap(l->w, q);
                }
                double sum = 0;
                times.time("2 parent forward", [&] {
                    for_each_piece([&](const std::vector<float> &o, size_t at) {
                        for (size_t i = 0; i < o.size(); ++i) {
                            const double d = static_cast<double>(o[i]) - reference[at + i];
                            sum += d * d;
                        }
                    });
                });
                for (auto &[l, q] : spare) {
                    changed(l->w.data());  // Q(W s) / s: the next candidate's values go there
                    std::swap(l->w, q);
                }
                return reference.empty() ? 0.0 : sum / static_cast<double>(reference.size());
            };
        }
        const awq::Search found = awq::search(layers, in, x_mean, ao, loss);
        const std::vector<float> ones(static_cast<size_t>(in), 1.0f);
        const size_t order = report_.size();
        auto [slot_it, fresh] = report_.try_emplace(name);
        MappingReport &rep = slot_it->second;
        if (fresh) rep.order = order;
        rep.ratio_index = found.best;
        rep.ratio = found.chosen.ratio;
        rep.duo = found.chosen.duo;
        rep.loss = found.losses.at(static_cast<size_t>(found.best));
        rep.loss_unscaled = loss(ones);
        rep.rows = static_cast<uint64_t>(rows);
        rep.routed_rows = given ? given->routed_rows : -1;
        const std::vector<float> &s = found.scales;
        // Fold: what precedes the group is divided by s, the group's weights multiplied.
        if (norm) {
            for (int64_t c = 0; c < in; ++c) (*norm)[static_cast<size_t>(c)] /= s[static_cast<size_t>(c)];
            round(*norm);
            modified[norm_tensor] = norm;
        } else {
            for (int64_t r = 0; r < prev->out; ++r) {
                for (int64_t c = 0; c < prev->in; ++c) prev->w[static_cast<size_t>(r * prev->in + c)] /= s[static_cast<size_t>(r)];
                if (!prev->b.empty()) prev->b[static_cast<size_t>(r)] /= s[static_cast<size_t>(r)];
            }
            round(prev->w);
            changed(prev->w.data());
            scaled.insert(prev->w.data());
            if (!prev->b.empty()) {
                round(prev->b);
                scaled.insert(prev->b.data());
                modified[prev->name + ".bias"] = &prev->b;
            }
            if (!targets.count(prev)) modified[prev->name + ".weight"] = &prev->w;
        }
        for (Linear *l : balance)
            if (!l->empty()) scale_columns(*l, s);
        for (Linear *l : compensate)
            if (!l->empty()) scale_columns(*l, s);
        // The recorded inputs follow the fold (later mappings read them).
        for (InputRecorder::Slot *slot : inputs)
            for (int64_t r = 0; r < slot->count(); ++r)
                for (int64_t c = 0; c < in; ++c) slot->rows[static_cast<size_t>(r * in + c)] /= s[static_cast<size_t>(c)];
        return s;
    };
    auto slot_map = [&](const std::string &name, Parent parent, InputRecorder::Slot *slot, std::vector<Linear *> balance,
                        std::vector<float> *norm, const std::string &norm_tensor, Linear *prev,
                        std::vector<Linear *> compensate = {}) {
        if (slot->count() == 0) return;
        smooth(name, {slot}, std::move(balance), norm, norm_tensor, prev, std::move(compensate), slot->rows.data(),
               slot->count(), slot->in, parent);
    };
    const std::string a = p + "self_attn.";
    if (mla) {
        slot_map(p + "input_layernorm -> " + (w.q_a.empty() ? "q_proj" : "q_a_proj") + ", kv_a_proj_with_mqa",
                 Parent::Attention, attn_in,
                 {&w.q_a, &w.q, &w.kv_a}, &w.input_norm, p + "input_layernorm.weight", nullptr);
        if (!w.q_a.empty())
            slot_map(a + "q_a_layernorm -> q_b_proj", Parent::Linears, q_b_in, {&w.q_b}, &w.q_a_norm, a + "q_a_layernorm.weight",
                     nullptr);
        slot_map(a + "kv_a_layernorm -> kv_b_proj", Parent::Linears, kv_b_in, {&w.kv_b}, &w.kv_a_norm, a + "kv_a_layernorm.weight",
                 nullptr);
    } else {
        slot_map(p + "input_layernorm -> q_proj, k_proj, v_proj", Parent::Attention, attn_in, {&w.q, &w.k, &w.v}, &w.input_norm,
                 p + "input_layernorm.weight", nullptr);
        if (w.v.out == w.o.in) slot_map(a + "v_proj -> o_proj", Parent::Linears, o_in, {&w.o}, nullptr, "", &w.v);
    }
    std::string norm_name = p + "post_attention_layernorm.weight";
    if (!w.moe) {
        slot_map(p + "post_attention_layernorm -> gate_proj, up_proj", Parent::Mlp, mlp_in, {&w.gate, &w.up}, &w.post_norm,
                 norm_name, nullptr);
        slot_map(p + "mlp.up_proj -> down_proj", Parent::Linears, down_in, {&w.down}, nullptr, "", &w.up);
    } else {
        std::vector<Linear *> balance;
        for (ExpertWeights &e : w.experts) balance.insert(balance.end(), {&e.gate, &e.up});
        if (w.has_shared) balance.insert(balance.end(), {&w.shared.gate, &w.shared.up});
        slot_map(p + "post_attention_layernorm -> experts' gate_proj, up_proj", Parent::Mlp, mlp_in, balance, &w.post_norm,
                 norm_name, nullptr, {&w.router, &w.shared_gate});
        if (w.has_shared)
            slot_map(w.shared.up.name + " -> down_proj", Parent::Linears, shared_down_in, {&w.shared.down}, nullptr, "", &w.shared.up);
        // Each routed expert's down reads silu(x gate^T) * (x up^T) for every token (all-experts calibration).
        // Blend (the default, as GPTQ's --moe-hessian): the search measures down's error on the tokens the
        // router sends the expert, plus moe_all_tokens_weight times its error on all tokens, each per token;
        // an expert that is never routed to (or, at weight 0, routed fewer tokens than its inputs) uses all
        // tokens alone.
        const int64_t n = mlp_in->count();
        const double lambda = opts.moe_all_tokens_weight;
        for (ExpertWeights &e : w.experts) {
            if (n == 0 || !quant_of(&e.down)) continue;
            const int64_t in = e.down.in;
            std::vector<float> g = swiglu_hidden(plain, e.gate, e.up, mlp_in->rows.data(), n);
            InputRecorder::Slot *routed = blend ? rec.routed(e.down) : nullptr;
            const int64_t nr = routed ? routed->count() : 0;
            const bool mixed = nr > 0 && (lambda > 0 || nr >= in);
            // weighted mean over tokens: each routed one 1 / nr, each of all tokens lambda / n, over 1 + lambda
            auto mix = [&](std::vector<float> from_routed, const std::function<std::vector<float>()> &from_all) {
                const double wr = 1.0 / (static_cast<double>(nr) * (1 + lambda));
                for (float &v : from_routed) v = static_cast<float>(v * wr);
                if (lambda > 0) {
                    const std::vector<float> every = from_all();
                    const double wa = lambda / (static_cast<double>(n) * (1 + lambda));
                    for (size_t i = 0; i < every.size(); ++i) from_routed[i] += static_cast<float>(wa * every[i]);
                }
                return from_routed;
            };
            InputStats stats;
            if (mixed) {
                times.time("2 input Gram", [&] {
                    std::vector<float> mr = awq::abs_mean(routed->rows.data(), nr, in), ma = awq::abs_mean(g.data(), n, in);
                    for (int64_t c = 0; c < in; ++c)
                        mr[static_cast<size_t>(c)] = static_cast<float>((mr[static_cast<size_t>(c)] + lambda * ma[static_cast<size_t>(c)]) / (1 + lambda));
                    stats.x_mean = std::move(mr);
                    stats.gram = mix(awq::input_gram(routed->rows.data(), nr, in, pool, gpu),
                                     [&] { return awq::input_gram(g.data(), n, in, pool, gpu); });
                });
                stats.routed_rows = nr;
            }
            const std::vector<float> s = smooth(e.up.name + " -> down_proj", {}, {&e.down}, nullptr, "", &e.up, {},
                                                g.data(), n, in, Parent::Linears, mixed ? &stats : nullptr);
            if (!opts.awq_clip) continue;
            // The clipping search below needs down's inputs after the fold: the Gram matrices, kept per expert.
            auto unscale = [&](auto &rows) {
                if (s.empty()) return;
                for (size_t i = 0; i < rows.size(); ++i) rows[i] /= s[i % static_cast<size_t>(in)];
            };
            const int group = scheme_of(&e.down)->group_size;
            unscale(g);
            if (!mixed) {
                expert_down_grams[&e.down] = awq::group_grams(g.data(), n, in, group, pool);
                continue;
            }
            unscale(routed->rows);
            expert_down_grams[&e.down] = mix(awq::group_grams(routed->rows.data(), nr, in, group, pool),
                                             [&] { return awq::group_grams(g.data(), n, in, group, pool); });
        }
    }
    // Clipping search (AutoAWQ's auto_clip) on the folded weights, with the inputs they now read; q and k
    // (and MLA's query/key projections) are left unclipped, as AutoAWQ does: attention scores are sensitive.
    if (opts.awq_clip) {
        std::map<const InputRecorder::Slot *, std::vector<float>> grams;
        auto clip = [&](Linear &l, const InputRecorder::Slot *slot, const std::vector<float> *given) {
            const ct::Scheme *sc = scheme_of(&l);
            if (!sc || l.empty()) return;
            const std::vector<float> *gm = given;
            if (!gm) {
                if (!slot || slot->count() == 0) return;
                auto it = grams.find(slot);
                if (it == grams.end())
                    it = grams.emplace(slot, awq::group_grams(slot->rows.data(), slot->count(), slot->in,
                                                              sc->group_size, pool)).first;
                gm = &it->second;
            }
            clipped_[l.name] = awq::clip(*sc, l.w.data(), l.out, l.in, *gm, 20, 0.5, pool);
        };
        if (!mla) clip(w.v, attn_in, nullptr);
        clip(w.o, o_in, nullptr);
        for (Linear *l : {&w.gate, &w.up, &w.shared.gate, &w.shared.up}) clip(*l, mlp_in, nullptr);
        clip(w.down, down_in, nullptr);
        clip(w.shared.down, shared_down_in, nullptr);
        for (ExpertWeights &e : w.experts) {
            clip(e.gate, mlp_in, nullptr);
            clip(e.up, mlp_in, nullptr);
            auto it = expert_down_grams.find(&e.down);
            if (it != expert_down_grams.end()) clip(e.down, nullptr, &it->second);
        }
    }

    // 4. GGUF: the GGUF engine quantizes and writes every tensor of the layer, taking the folded values from
    //    here; then the quantized Linears compute with what their blocks stand for.
    if (gguf) {
        std::map<std::string, std::pair<const float *, size_t>> given;  // tensor -> values held here
        std::vector<Linear *> held = w.quantizable();
        held.insert(held.end(), {&w.router, &w.shared_gate});
        for (Linear *l : held) {
            if (l->empty()) continue;
            given[l->name + ".weight"] = {l->w.data(), l->w.size()};
            if (!l->b.empty()) given[l->name + ".bias"] = {l->b.data(), l->b.size()};
        }
        for (const auto &[name, v] : modified) given[name] = {v->data(), v->size()};
        std::mutex served_mutex;
        std::set<const float *> served;
        auto values = [&](const OutputTensor &t, const MatrixView &view, int expert) -> const float * {
            const float *data = nullptr;
            size_t n = 0;
            if (expert >= 0) {
                const Linear &l = expert_linear(w.experts.at(static_cast<size_t>(expert)), t.proj);
                data = l.w.data();
                n = l.w.size();
            } else {
                auto it = given.find(view.tensor);
                if (it == given.end()) return nullptr;
                std::tie(data, n) = it->second;
                if (view.row_begin != 0) data = nullptr;
            }
            if (!data || view.rows * view.cols != n)
                fail(KTQ_ERR_INTERNAL, "AWQ: GGUF output '" + t.name + "' does not read " + view.tensor + " as ktq's forward holds it");
            std::lock_guard<std::mutex> lock(served_mutex);
            served.insert(data);
            return data;
        };
        if (write) {
            write_gguf_layer(model, layer, writer, pool, opts, on_tensor, values);
            for (const auto &[name, v] : modified)
                if (!served.count(v->data()))
                    fail(KTQ_ERR_UNSUPPORTED, "AWQ folds scales into " + name + ", which this GGUF output does not "
                                              "store; convert without --engine awq");
            for (const float *weights : scaled)
                if (!served.count(weights))
                    fail(KTQ_ERR_UNSUPPORTED, "AWQ scaled a Linear of layer " + std::to_string(layer) +
                                              " that this GGUF output does not store; convert without --engine awq");
        }
        for (auto &entry : quant) {
            Linear *l = const_cast<Linear *>(entry.first);
            const GgmlTypeTraits &type = *entry.second.ggml;  // (C++17 lambdas cannot capture structured bindings)
            constexpr int64_t kRows = 16;  // rows per task: fixed, whatever the thread count
            pool.parallel_for(static_cast<size_t>((l->out + kRows - 1) / kRows), [&](size_t t) {
                const int64_t r0 = static_cast<int64_t>(t) * kRows, n = std::min(kRows, l->out - r0);
                ggml_round_trip(type, l->w.data() + r0 * l->in, static_cast<size_t>(n * l->in));
            });
        }
    }
    // 4. Compressed-tensors: round to nearest on the scaled weights; the model computes with what the codes
    //    stand for.
    for (auto &[l, o] : targets) {
        const ct::Scheme &s = o.packed->ct_scheme;
        ct::round_to_dtype(s.dtype, l->w.data(), l->w.size());
        for (float v : l->w)
            if (!std::isfinite(v) && !opts.allow_non_finite)
                fail(KTQ_ERR_FORMAT, "tensor '" + o.packed->source + "' holds NaN/Inf values (corrupt download?)");
        const uint64_t rows = static_cast<uint64_t>(l->out), cols = static_cast<uint64_t>(l->in);
        const uint64_t groups = ct::groups_per_row(s, cols);
        std::vector<uint32_t> packed(rows * ct::packed_words_per_row(s, cols));
        std::vector<uint8_t> scales(ct::scale_bytes(s, rows, cols));
        std::vector<int8_t> zp(rows * groups);
        ct::quantize_rows(s, l->w.data(), rows, cols, packed.data(), scales.data(), s.symmetric ? nullptr : zp.data());
        if (write) {
            write_ct_linear(writer, o, s, rows, cols, packed, scales, zp);
            model.release(o.packed->source);
            if (!on_tensor(o.packed->name, model.stored_bytes(o.packed->source)))
                fail(KTQ_ERR_CANCELLED, "cancelled by the progress callback");
        }
        ct::dequantize_rows(s, packed.data(), scales.data(), s.symmetric ? nullptr : zp.data(), rows, cols,
                            l->w.data());
    }
    // Kept tensors: the folded ones from their new values, the rest as read.
    if (write && !gguf) {
        std::vector<const OutputTensor *> unchanged;
        std::set<std::string> written;
        for (const OutputTensor *t : copies) {
            auto it = modified.find(t->source);
            if (it == modified.end()) {
                unchanged.push_back(t);
                continue;
            }
            const std::vector<float> &v = *it->second;
            uint64_t elements = 1;
            for (int64_t d : t->shape) elements *= static_cast<uint64_t>(d);
            if (elements != v.size())
                fail(KTQ_ERR_INTERNAL, "AWQ: output '" + t->name + "' does not hold " + t->source + " as one tensor");
            std::vector<uint8_t> bytes(v.size() * dtype_size(t->dtype));
            for (size_t i = 0; i < v.size(); ++i) {
                if (t->dtype == KTQ_DTYPE_BF16) {
                    const uint16_t b = f32_to_bf16(v[i]);
                    std::memcpy(&bytes[i * 2], &b, 2);
                } else if (t->dtype == KTQ_DTYPE_F16) {
                    const uint16_t b = half::f16_bits(v[i]);
                    std::memcpy(&bytes[i * 2], &b, 2);
                } else if (t->dtype == KTQ_DTYPE_F32) {
                    std::memcpy(&bytes[i * 4], &v[i], 4);
                } else {
                    fail(KTQ_ERR_UNSUPPORTED, "AWQ: cannot store the folded tensor " + t->source + " as " +
                                                  dtype_name(t->dtype));
                }
            }
            writer.write(*t, 0, bytes.data(), bytes.size());
            written.insert(t->source);
            if (!on_tensor(t->name, model.stored_bytes(t->source)))
                fail(KTQ_ERR_CANCELLED, "cancelled by the progress callback");
        }
        for (const auto &[source, values] : modified)
            if (!written.count(source))
                fail(KTQ_ERR_UNSUPPORTED, "AWQ folds scales into " + source +
                                              ", which this output does not store as a tensor of its own; quantize "
                                              "it (or its mapping's Linears) with the rtn engine instead");
        if (!unchanged.empty()) CastEngine().run_tensors(model, unchanged, writer, pool, opts, on_tensor);
    }
    // 5. The next layer's inputs, through the layer as written.
    if (gpu) gpu->forget();  // the weights now hold what was written
    ctx.observer = nullptr;
    ctx.expert_tokens = nullptr;
    times.time("5 forward as written", [&] {
        cal_.for_each_batch(opts.calibration_batch, true,
                            [&](float *x, int64_t seqs, int64_t len) { forward_layer(ctx, w, x, seqs, len); });
    });
    times.print(layer);
    if (std::getenv("KTQ_AWQ_TIMING"))
        std::fprintf(stderr, "AWQ layer %d: %.2f s in all\n", layer,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - layer_start).count());
    cal_.finished(layer);
    if (!gguf) record(writer);  // a GGUF output is one file: no reports beside it
}

void AwqEngine::record(Writer &writer) const {
    writer.add_file("routing_stats.json", cal_.routing_stats("AWQ").dump(1) + "\n");
    nlohmann::ordered_json rep, maps = nlohmann::ordered_json::object();
    std::vector<std::pair<size_t, const std::string *>> order;
    for (const auto &[name, m] : report_) order.emplace_back(m.order, &name);
    std::sort(order.begin(), order.end());
    for (const auto &[index, name_ptr] : order) {
        const std::string &name = *name_ptr;
        const MappingReport &m = report_.at(name);
        maps[name] = {{"ratio", m.ratio},
                      {"duo_scaling", m.duo},
                      {"grid_index", m.ratio_index},
                      {"loss", m.loss},
                      {"loss_unscaled", m.loss_unscaled},
                      {"rows", m.rows}};
        if (m.routed_rows >= 0) maps[name]["routed_rows"] = m.routed_rows;
    }
    rep["description"] = "AWQ per mapping: the chosen grid point (index, exponent, duo scaling), the mean squared "
                         "error of the mapping's parent module (attention block, MLP block or the Linear) with the "
                         "chosen scales and with none (plain round to nearest)";
    rep["mappings"] = maps;
    nlohmann::ordered_json clips = nlohmann::ordered_json::object();
    uint64_t total = 0;
    for (const auto &[name, n] : clipped_) {
        clips[name] = n;
        total += n;
    }
    rep["clipped_groups"] = clips;
    rep["clipped_groups_total"] = total;
    rep["calibration_activations"] = cal_.activations_report();
    rep["recorded_inputs_in_temporary_file"] = recorded_to_file_;  // layers whose inputs a memory limit sent there
    writer.add_file("awq_report.json", rep.dump(1) + "\n");
}

}  // namespace ktq
