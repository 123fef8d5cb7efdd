#include "engines/gptq_engine.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cuda/cuda_devices.h"
#include "cuda/gptq_cuda.h"
#include "engines/cast_engine.h"
#include "engines/ct_layer_outputs.h"
#include "forward/causal_lm.h"
#include "forward/decoder_layer.h"
#include "forward/layer_weights.h"
#include "quant/ct_rtn.h"
#include "quant/gptq.h"
#include "runtime/error.h"
#include "text/calibration_data.h"

namespace ktq {

namespace {

// A Hessian sum in host memory (gptq::Hessian) or in device memory
// (cuda_gptq::DeviceHessian, --device cuda).
class HessianSum {
public:
    // device >= 0: the sum lives on that GPU.
    HessianSum(int64_t cols, int device) : cpu_(device >= 0 ? 0 : cols) {
        if (device >= 0) gpu_ = std::make_unique<cuda_gptq::DeviceHessian>(cols, device);
    }
    void add(const float *x, int64_t n, ThreadPool &pool) {
        if (gpu_)
            gpu_->add(x, n);
        else
            cpu_.add(x, n, pool);
    }
    cuda_gptq::DeviceHessian *device() { return gpu_.get(); }
    uint64_t rows() const { return gpu_ ? gpu_->rows() : cpu_.rows(); }
    std::vector<float> normalized() const { return gpu_ ? gpu_->normalized() : cpu_.normalized(); }

private:
    gptq::Hessian cpu_;
    std::unique_ptr<cuda_gptq::DeviceHessian> gpu_;
};

// Hessians of the Linears being quantized. Linears that read the same input
// (q/k/v; every routed expert's gate and up for all tokens; an expert's
// gate/up for its routed tokens) share one accumulator, filled once per
// input. On a GPU, the all-experts pass of each routed expert (its down
// input for every token) runs there too (cuda_gptq::ExpertCalibrator).
class HessianObserver : public ActivationObserver {
public:
    using Map = std::map<const Linear *, std::shared_ptr<HessianSum>>;
    // expert_device >= 0: run the routed experts' all-token pass on that GPU
    // (their all-token Hessians are device sums there), caching up to
    // `cache` bytes of expert weights.
    HessianObserver(Map &all, Map *routed, ThreadPool &pool, int expert_device, size_t cache)
        : all_(all), routed_(routed), pool_(pool) {
        if (expert_device >= 0) {
            rows_ = std::make_unique<cuda_gptq::DeviceRows>(expert_device);
            experts_ = std::make_unique<cuda_gptq::ExpertCalibrator>(cache, expert_device);
        }
    }
    void release_device() {  // calibration done: the GPU memory goes to the solve
        experts_.reset();
        rows_.reset();
    }
    void observe(const Linear &linear, const float *x, int64_t rows) override { add(all_, linear, x, rows); }
    void observe_routed(const Linear &linear, const float *x, int64_t rows) override {
        if (routed_) add(*routed_, linear, x, rows);
    }
    bool observe_expert_all_tokens(const ExpertWeights &e, const float *x, int64_t rows) override {
        if (!experts_) return false;
        rows_->upload(x, rows, e.gate.in);
        for (const Linear *l : {&e.gate, &e.up}) {
            auto it = all_.find(l);
            if (it != all_.end() && fresh(it->second.get(), x, rows)) it->second->device()->add_device(rows_->data(), rows);
        }
        auto d = all_.find(&e.down);
        if (d != all_.end())
            experts_->add_down_hessian(*d->second->device(), &e.gate, e.gate.w.data(), e.up.w.data(), e.gate.out,
                                       e.gate.in, *rows_);
        return true;
    }
    void forget() {  // activations are about to be overwritten
        last_.clear();
        if (rows_) rows_->forget();
    }

private:
    // False when a sibling already added this input to h.
    bool fresh(const HessianSum *h, const float *x, int64_t rows) {
        auto [seen, added] = last_.try_emplace(h, x, rows);
        if (!added && seen->second == std::make_pair(x, rows)) return false;
        seen->second = {x, rows};
        return true;
    }
    void add(Map &m, const Linear &linear, const float *x, int64_t rows) {
        auto it = m.find(&linear);
        if (it == m.end() || !fresh(it->second.get(), x, rows)) return;
        it->second->add(x, rows, pool_);
    }
    Map &all_;
    Map *routed_;
    ThreadPool &pool_;
    std::map<const HessianSum *, std::pair<const float *, int64_t>> last_;  // input each Hessian last took
    std::unique_ptr<cuda_gptq::DeviceRows> rows_;
    std::unique_ptr<cuda_gptq::ExpertCalibrator> experts_;
};

// Groups of a layer's Linears that read the same input: for all tokens,
// every routed expert's gate and up read the layer's MoE input; for routed
// tokens, each expert its own.
std::vector<std::vector<Linear *>> input_groups(LayerWeights &w, bool routed_tokens) {
    std::vector<std::vector<Linear *>> g = {{&w.q, &w.k, &w.v}, {&w.q_a, &w.kv_a}, {&w.gate, &w.up},
                                            {&w.shared.gate, &w.shared.up}};
    if (routed_tokens) {
        for (ExpertWeights &e : w.experts) g.push_back({&e.gate, &e.up});
    } else {
        std::vector<Linear *> experts;
        for (ExpertWeights &e : w.experts) experts.insert(experts.end(), {&e.gate, &e.up});
        g.push_back(experts);
    }
    return g;
}

const char *act_order_name(ktq_act_order a) { return a == KTQ_ACT_ORDER_STATIC ? "static" : nullptr; }

}  // namespace

void GptqEngine::process(const Model &model, int layer, Writer &writer, ThreadPool &pool,
                         const ktq_quantize_options &opts, const TensorDoneFn &on_tensor, bool write) {
    const ForwardConfig &cfg = cal_.cfg();
    LayerWeights w = load_layer(model, cfg, layer);
    {
        uint64_t hessians = 0;  // an upper bound: Linears reading the same input share one
        for (Linear *l : w.quantizable()) hessians += static_cast<uint64_t>(l->in * l->in) * sizeof(float);
        if (opts.moe_hessian == KTQ_MOE_HESSIAN_BLEND)  // routed-token sums beside the all-token ones
            for (ExpertWeights &e : w.experts)
                for (Linear *l : {&e.gate, &e.down}) hessians += static_cast<uint64_t>(l->in * l->in) * sizeof(float);
        cal_.check_layer_memory(opts, "GPTQ", layer,
                                {{"layer weights", layer_float_bytes(w)},
                                 {cuda_ ? "Hessians (host copies)" : "Hessians", hessians},
                                 {"one batch", cal_.batch_bytes(opts.calibration_batch)}});
    }
    // Which Linears the plan quantizes, and the outputs made from each.
    CtLayerOutputs outputs = ct_layer_outputs(writer, layer, w, cfg.family, "GPTQ");
    auto &targets = outputs.targets;
    const std::vector<const OutputTensor *> &copies = outputs.copies;
    // 1. Calibration forward: Hessians (shared within input groups) and routing counts.
    check_moe_calibration_options(opts);
    const bool routed_mode = opts.moe_hessian == KTQ_MOE_HESSIAN_BLEND;
    std::set<const Linear *> routed_linears;
    for (ExpertWeights &e : w.experts)
        for (Linear *l : {&e.gate, &e.up, &e.down}) routed_linears.insert(l);
    HessianObserver::Map hessians, routed_h;
    // On a GPU: the Hessian sums live there while they fit half of the
    // device budget (routed-token sums move to host memory first), the
    // expert weights cached for the all-token pass get a quarter.
    size_t budget = 0;
    bool all_on_gpu = false, routed_on_gpu = false;
    std::vector<int> devices;
    if (cuda_) {
        if (opts.devices && opts.device_count > 0)
            devices.assign(opts.devices, opts.devices + opts.device_count);
        else
            devices = {0};
        for (int d : devices) {
            size_t free_b = 0, total_b = 0;
            if (d < 0 || !cuda_memory_info(d, &free_b, &total_b))
                fail(KTQ_ERR_UNSUPPORTED, "GPTQ on the GPU: CUDA device " + std::to_string(d) +
                                              " is not usable (check --devices, CUDA_VISIBLE_DEVICES; or --device cpu)");
        }
        size_t free_b = 0, total_b = 0;
        cuda_memory_info(devices.front(), &free_b, &total_b);
        budget = free_b / 10 * 8;
        if (opts.max_device_memory > 0) budget = std::min<size_t>(budget, static_cast<size_t>(opts.max_device_memory));
        size_t all_bytes = 0, routed_bytes = 0;
        auto count_bytes = [&](const std::vector<std::vector<Linear *>> &groups, bool routed_only, size_t &bytes) {
            for (const auto &g : groups)
                for (Linear *l : g)
                    if (targets.count(l) && (!routed_only || routed_linears.count(l))) {
                        bytes += static_cast<size_t>(l->in * l->in) * 4;  // one sum per group
                        break;
                    }
        };
        const std::vector<std::vector<Linear *>> groups = input_groups(w, false);
        count_bytes(groups, false, all_bytes);
        for (const auto &target : targets) {  // Linears outside the groups (o_proj, down_proj, ...): a sum each
            const Linear *l = target.first;
            if (std::none_of(groups.begin(), groups.end(),
                             [&](const auto &g) { return std::find(g.begin(), g.end(), l) != g.end(); }))
                all_bytes += static_cast<size_t>(l->in * l->in) * 4;
        }
        if (routed_mode) count_bytes(input_groups(w, true), true, routed_bytes);
        if (routed_mode)
            for (ExpertWeights &e : w.experts)
                if (targets.count(&e.down)) routed_bytes += static_cast<size_t>(e.down.in * e.down.in) * 4;
        all_on_gpu = all_bytes <= budget / 2;
        routed_on_gpu = all_on_gpu && all_bytes + routed_bytes <= budget / 2;
    }
    auto share = [&](HessianObserver::Map &m, const std::vector<Linear *> &members, bool routed_only, bool gpu) {
        std::shared_ptr<HessianSum> h;
        for (Linear *l : members) {
            if (!targets.count(l) || (routed_only && !routed_linears.count(l))) continue;
            if (!h) h = std::make_shared<HessianSum>(l->in, gpu ? devices.front() : -1);
            m[l] = h;
        }
    };
    for (const auto &g : input_groups(w, false)) share(hessians, g, false, all_on_gpu);
    if (routed_mode)
        for (const auto &g : input_groups(w, true)) share(routed_h, g, true, routed_on_gpu);
    for (auto &[l, o] : targets) {
        if (!hessians.count(l)) hessians[l] = std::make_shared<HessianSum>(l->in, all_on_gpu ? devices.front() : -1);
        if (routed_mode && routed_linears.count(l) && !routed_h.count(l))
            routed_h[l] = std::make_shared<HessianSum>(l->in, routed_on_gpu ? devices.front() : -1);
    }
    HessianObserver observer(hessians, routed_mode ? &routed_h : nullptr, pool, all_on_gpu ? devices.front() : -1,
                             budget / 4);
    std::vector<uint64_t> &counts = cal_.expert_tokens(layer);
    // The rest of the forward (attention, routers, the routed computation of
    // the output) stays on the CPU even with --device cuda: on the GPU host,
    // cuBLAS products there made no difference to the time on the shared
    // models, and their different rounding (routing ties, then every later
    // layer's inputs) cut the codes that agree with the CPU run from 99.998 %
    // to 99.67 %. `ktq eval-ppl --device cuda` does run it on the GPU.
    ForwardContext ctx;
    ctx.cfg = &cfg;
    ctx.pool = &pool;
    ctx.observer = &observer;
    ctx.expert_tokens = w.moe ? &counts : nullptr;
    cal_.for_each_batch(opts.calibration_batch, false, [&](float *x, int64_t seqs, int64_t len) {
        observer.forget();
        forward_layer(ctx, w, x, seqs, len);
    });
    observer.release_device();
    // 2. GPTQ per Linear, outputs written, weights replaced by what the codes stand for.
    struct Job {
        Linear *l;
        const CtParts *o;
        gptq::Options go;
        std::vector<float> wq;  // the weights as the scheme's dtype holds them
        const HessianSum *h, *hr;
        uint64_t routed_rows;
    };
    std::vector<Job> jobs;
    for (auto &[l, o] : targets) {
        Job j{l, &o, {}, l->w, hessians.at(l).get(), routed_h.count(l) ? routed_h.at(l).get() : nullptr, 0};
        j.go.scheme = o.packed->ct_scheme;
        j.go.block_size = opts.gptq_block_size;
        j.go.dampening_frac = opts.dampening_frac;
        j.go.act_order = opts.act_order == KTQ_ACT_ORDER_STATIC ? gptq::ActOrder::Static : gptq::ActOrder::None;
        ct::round_to_dtype(j.go.scheme.dtype, j.wq.data(), j.wq.size());  // FP8 / F32 sources: as transformers loads them
        for (float v : j.wq)
            if (!std::isfinite(v) && !opts.allow_non_finite)
                fail(KTQ_ERR_FORMAT, "tensor '" + o.packed->source + "' holds NaN/Inf values (corrupt download?)");
        j.routed_rows = j.hr ? j.hr->rows() : j.h->rows();
        jobs.push_back(std::move(j));
    }
    // The normalized Hessian GPTQ uses: routed tokens' + weight x all tokens' (see ktq_moe_hessian).
    auto blended = [&](const Job &j) {
        std::vector<float> hn = j.h->normalized();
        const float alpha = static_cast<float>(opts.moe_all_tokens_weight);
        if (j.hr && (j.routed_rows >= static_cast<uint64_t>(j.l->in) || (alpha > 0 && j.routed_rows > 0))) {
            const std::vector<float> rn = j.hr->normalized();
            for (size_t i = 0; i < hn.size(); ++i) hn[i] = rn[i] + alpha * hn[i];
        }
        return hn;
    };
    auto emit = [&](Job &j, const gptq::Result &r) {
        Linear *l = j.l;
        const CtParts &o = *j.o;
        ModuleReport &rep = report_[l->name];
        rep.loss = r.loss;
        rep.rtn_fallback = r.rtn_fallback;
        rep.rows_seen = j.h->rows();
        rep.rows_routed = j.routed_rows;
        if (write) {
            const ct::Scheme &s = j.go.scheme;
            const uint64_t rows = static_cast<uint64_t>(l->out), cols = static_cast<uint64_t>(l->in);
            std::vector<uint32_t> packed(rows * ct::packed_words_per_row(s, cols));
            ct::pack_codes(s, r.codes.data(), rows, cols, packed.data());
            std::vector<uint8_t> scales(ct::scale_bytes(s, rows, cols));
            ct::store_scales(s, r.scales.data(), r.scales.size(), scales.data());
            write_ct_linear(writer, o, s, rows, cols, packed, scales, r.zero_points);
            model.release(o.packed->source);
            if (!on_tensor(o.packed->name, model.stored_bytes(o.packed->source)))
                fail(KTQ_ERR_CANCELLED, "cancelled by the progress callback");
        }
        l->w = r.dequantized;
    };
    if (cuda_) {
        // Every Linear of one shape and scheme in one batch (an MoE layer's
        // experts), siblings sharing their factor; outputs in the CPU order.
        std::vector<gptq::Result> results(jobs.size());
        std::vector<bool> done(jobs.size(), false);
        for (size_t first = 0; first < jobs.size(); ++first) {
            if (done[first]) continue;
            const Job &f = jobs[first];
            auto same = [&](const Job &j) {
                const ct::Scheme &a = j.go.scheme, &b = f.go.scheme;
                return j.l->out == f.l->out && j.l->in == f.l->in && a.bits == b.bits && a.group_size == b.group_size &&
                       a.symmetric == b.symmetric && a.dtype == b.dtype && a.observer == b.observer;
            };
            cuda_gptq::Batch batch;
            batch.rows = f.l->out;
            batch.cols = f.l->in;
            batch.max_device_bytes = budget / 2;
            std::vector<size_t> members;
            std::vector<std::vector<float>> hs;
            std::map<std::pair<const HessianSum *, const HessianSum *>, int> factor_index;
            for (size_t i = first; i < jobs.size(); ++i) {
                if (done[i] || !same(jobs[i])) continue;
                auto [it, fresh] = factor_index.try_emplace({jobs[i].h, jobs[i].hr}, static_cast<int>(hs.size()));
                if (fresh) hs.push_back(blended(jobs[i]));
                batch.weights.push_back(jobs[i].wq.data());
                batch.factor_of.push_back(it->second);
                members.push_back(i);
                done[i] = true;
            }
            for (const auto &h : hs) batch.hessians.push_back(cuda_gptq::HessianRef{h.data(), nullptr, 1.0f});
            std::vector<gptq::Result> rs = cuda_gptq::quantize(batch, f.go, devices);
            for (size_t k = 0; k < members.size(); ++k) results[members[k]] = std::move(rs[k]);
        }
        for (size_t i = 0; i < jobs.size(); ++i) emit(jobs[i], results[i]);
    } else {
        // Siblings with the same Hessian(s) share one factorization.
        std::unique_ptr<gptq::Factor> factor;
        std::pair<const HessianSum *, const HessianSum *> factor_key{nullptr, nullptr};
        for (Job &j : jobs) {
            if (!factor || factor_key != std::make_pair(j.h, j.hr)) {
                factor = std::make_unique<gptq::Factor>(gptq::factorize(blended(j), j.l->in, j.go));
                factor_key = {j.h, j.hr};
            }
            emit(j, gptq::quantize(j.wq.data(), j.l->out, j.l->in, *factor, j.go, pool));
        }
    }
    if (write && !copies.empty()) CastEngine().run_tensors(model, copies, writer, pool, opts, on_tensor);
    // 3. The next layer's inputs, through the quantized layer.
    ctx.observer = nullptr;
    ctx.expert_tokens = nullptr;
    cal_.for_each_batch(opts.calibration_batch, true,
                   [&](float *x, int64_t seqs, int64_t len) { forward_layer(ctx, w, x, seqs, len); });
    cal_.finished(layer);
    record(writer);
    writer.amend_config([&](nlohmann::json &c) {
        auto qc = c.find("quantization_config");
        if (qc == c.end()) return;
        for (auto &[name, group] : (*qc)["config_groups"].items())
            if (group.contains("weights") && group["weights"].is_object()) {
                const char *a = act_order_name(opts.act_order);
                group["weights"]["actorder"] = a ? nlohmann::json(a) : nlohmann::json(nullptr);
            }
    });
}

void GptqEngine::record(Writer &writer) const {
    const nlohmann::ordered_json stats = cal_.routing_stats("GPTQ");
    writer.add_file("routing_stats.json", stats.dump(1) + "\n");
    nlohmann::ordered_json rep;
    nlohmann::ordered_json modules = nlohmann::ordered_json::object();
    size_t fallbacks = 0;
    for (const auto &[name, m] : report_) {
        modules[name] = {{"loss", m.loss}, {"rows_seen", m.rows_seen}, {"rows_routed", m.rows_routed},
                         {"rtn_fallback", m.rtn_fallback}};
        fallbacks += m.rtn_fallback;
    }
    rep["modules"] = modules;
    rep["rtn_fallbacks"] = fallbacks;
    rep["calibration_activations"] = cal_.activations_report();
    writer.add_file("gptq_report.json", rep.dump(1) + "\n");
}

}  // namespace ktq
