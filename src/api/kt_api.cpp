// C API: kt-kernel AMX outputs read back (ktq/kt.h) and merged from loose files.
#include <unistd.h>

#include <map>
#include <set>

#include "api/handles.h"
#include "ktq/kt.h"
#include "reading/dtype.h"
#include "reading/kt_output.h"
#include "writers/checkpoint_writer.h"
#include "writers/kt_amx_plan.h"
#include "writers/safetensors_writer.h"

struct ktq_kt_output {
    std::unique_ptr<ktq::KtOutput> impl;
};

using ktq::fail;
using ktq::guarded;
using ktq::require;

namespace {

const ktq::KtPart &part_at(const ktq_kt_output *o, size_t index) {
    require(o != nullptr, "output is NULL");
    if (index >= o->impl->parts().size())
        fail(KTQ_ERR_NOT_FOUND, "part " + std::to_string(index) + " does not exist (" +
                                    std::to_string(o->impl->parts().size()) + " parts)");
    return o->impl->parts()[index];
}

ktq_format format_of(ktq::kt_amx::Method m) {
    return m == ktq::kt_amx::Method::Int8 ? KTQ_FORMAT_KT_AMXINT8 : KTQ_FORMAT_KT_AMXINT4;
}

// The merged plan for the parts of `loose`: from the model when there is one
// (so non-expert tensors and copies come too), else experts only.
ktq::OutputPlan merged_plan(const ktq::KtOutput &loose, const ktq::Model *model, const ktq_writer_options &opts) {
    const auto &parts = loose.parts();
    int numa_parts = 0;
    for (const auto &p : parts) {
        if (p.method != parts[0].method)
            fail(KTQ_ERR_FORMAT, loose.dir() + ": mixes INT4 and INT8 parts (" + p.name + ")");
        numa_parts = std::max(numa_parts, p.part + 1);
    }
    if (model) {
        ktq::KtAmxLayout layout;
        layout.method = parts[0].method;
        layout.numa_parts = numa_parts;
        return ktq::plan_kt_amx(*model, layout, opts);
    }
    ktq::OutputPlan plan;
    plan.pt_metadata = false;
    std::map<int, std::vector<size_t>> by_layer;
    for (const auto &p : parts)
        for (bool is_scale : {false, true}) {
            by_layer[p.layer].push_back(plan.tensors.size());
            plan.tensors.push_back(
                ktq::kt_part_tensor(p.method, p.layer, p.expert, p.proj, p.part, p.rows, p.weight_bytes, is_scale));
        }
    for (auto &kv : by_layer) {
        ktq::sort_like_safetensors(kv.second, plan.tensors);
        plan.shards.push_back(std::move(kv.second));
    }
    return plan;
}

}  // namespace

extern "C" {

ktq_status ktq_kt_output_open(ktq_kt_output **out, const char *dir, ktq_error **err) {
    if (out) *out = nullptr;
    return guarded(err, [&] {
        require(out != nullptr && dir != nullptr, "out or dir is NULL");
        auto o = std::make_unique<ktq_kt_output>();
        o->impl = std::make_unique<ktq::KtOutput>(dir);
        *out = o.release();
    });
}

void ktq_kt_output_free(ktq_kt_output *output) { delete output; }

size_t ktq_kt_output_part_count(const ktq_kt_output *output) { return output ? output->impl->parts().size() : 0; }

int ktq_kt_output_is_merged(const ktq_kt_output *output) { return output && output->impl->merged() ? 1 : 0; }

ktq_status ktq_kt_part_info_init(ktq_kt_part_info *info, unsigned version) {
    return ktq::init_versioned(info, version, KTQ_KT_PART_INFO_VERSION);
}

ktq_status ktq_kt_output_part(ktq_kt_part_info *info, const ktq_kt_output *output, size_t index, ktq_error **err) {
    return guarded(err, [&] {
        require(info != nullptr, "info is NULL");
        ktq::check_version(info->version, KTQ_KT_PART_INFO_VERSION, "ktq_kt_part_info");
        const ktq::KtPart &p = part_at(output, index);
        info->name = p.name.c_str();
        info->layer = p.layer;
        info->expert = p.expert;
        info->proj = static_cast<ktq_expert_proj>(p.proj);
        info->part = p.part;
        info->method = format_of(p.method);
        info->rows = p.rows;
        info->cols = p.cols;
        info->packed_bytes = p.weight_bytes;
    });
}

ktq_status ktq_kt_output_read(void *packed, size_t packed_bytes, float *scales, size_t rows,
                              const ktq_kt_output *output, size_t index, ktq_error **err) {
    return guarded(err, [&] {
        const ktq::KtPart &p = part_at(output, index);
        require(packed != nullptr && scales != nullptr, "packed or scales is NULL");
        if (packed_bytes != p.weight_bytes || rows != p.rows)
            fail(KTQ_ERR_INVALID_ARGUMENT, p.name + ": needs " + std::to_string(p.weight_bytes) + " bytes and " +
                                               std::to_string(p.rows) + " scales");
        output->impl->read(p, static_cast<uint8_t *>(packed), scales);
    });
}

ktq_status ktq_kt_output_dequantize(float *dst, size_t count, const ktq_kt_output *output, size_t index,
                                    ktq_error **err) {
    return guarded(err, [&] {
        const ktq::KtPart &p = part_at(output, index);
        require(dst != nullptr, "dst is NULL");
        if (count != p.rows * p.cols)
            fail(KTQ_ERR_INVALID_ARGUMENT, p.name + ": holds " + std::to_string(p.rows * p.cols) + " weights");
        output->impl->dequantize(p, dst);
    });
}

ktq_status ktq_kt_merge(const char *out_dir, const char *loose_dir, const ktq_model *model,
                        const ktq_writer_options *opts, ktq_error **err) {
    return guarded(err, [&] {
        require(out_dir != nullptr && loose_dir != nullptr, "out_dir or loose_dir is NULL");
        ktq_writer_options o;
        ktq_writer_options_init(&o, KTQ_WRITER_OPTIONS_VERSION);
        if (opts) {
            ktq::check_version(opts->version, KTQ_WRITER_OPTIONS_VERSION, "ktq_writer_options");
            o.overwrite = opts->overwrite;
            o.copy_aux_files = opts->copy_aux_files;
            if (opts->version >= 6) o.no_sync = opts->no_sync;  // older callers' structs end before it
        }
        ktq::KtOutput loose(loose_dir);
        if (loose.merged()) fail(KTQ_ERR_INVALID_ARGUMENT, std::string(loose_dir) + ": already merged");
        const ktq::Model *m = model ? model->impl.get() : nullptr;
        ktq::OutputPlan plan = merged_plan(loose, m, o);

        // Every planned expert tensor must come from a loose file of the same size, and every loose file be used.
        std::map<std::string, const ktq::KtPart *> by_name;
        for (const auto &p : loose.parts()) by_name[p.name] = &p;
        std::set<std::string> used;
        for (const auto &t : plan.tensors) {
            if (t.expert < 0) continue;
            const std::string base = t.name.substr(0, t.name.rfind('.'));
            auto it = by_name.find(base);
            if (it == by_name.end())
                fail(KTQ_ERR_FORMAT, std::string(loose_dir) + ": " + base + " is missing (the model has it)");
            if ((t.is_scale ? it->second->rows * 4 : it->second->weight_bytes) != t.nbytes())
                fail(KTQ_ERR_FORMAT, std::string(loose_dir) + ": " + base + " does not have the model's shape");
            used.insert(base);
        }
        for (const auto &p : loose.parts())
            if (!used.count(p.name))
                fail(KTQ_ERR_FORMAT, std::string(loose_dir) + ": " + p.name + " is not part of the model");

        ktq::prepare_output_dir(out_dir, m ? m->checkpoint().dir() : std::string(loose_dir), o.overwrite != 0, false);
        std::vector<std::vector<const ktq::OutputTensor *>> groups;
        for (const auto &shard : plan.shards) {
            groups.emplace_back();
            for (size_t i : shard) groups.back().push_back(&plan.tensors[i]);
        }
        ktq::ShardedSafetensorsWriter store(out_dir, groups, plan.pt_metadata, false);
        store.set_sync_on_commit(!o.no_sync);
        std::vector<uint8_t> packed;
        std::vector<float> scales;
        std::map<std::string, const ktq::OutputTensor *> planned;  // by name
        for (const auto &t : plan.tensors)
            if (t.expert >= 0) planned[t.name] = &t;
        for (const auto &p : loose.parts()) {
            packed.resize(p.weight_bytes);
            scales.resize(p.rows);
            loose.read(p, packed.data(), scales.data());
            store.write(*planned.at(p.name + ".weight"), 0, packed.data(), packed.size());
            store.write(*planned.at(p.name + ".scale"), 0, scales.data(), scales.size() * 4);
        }
        if (m)
            for (const auto &t : plan.tensors) {
                if (t.expert >= 0) continue;
                const auto &ref = m->checkpoint().at(t.source);
                store.write(t, 0, ref.file->data(*ref.entry), ref.entry->nbytes());
            }
        std::vector<std::string> written;
        try {
            if (!plan.config_json.empty()) {
                written.push_back("config.json");
                ktq::write_file_atomically(out_dir, "config.json", plan.config_json);
            }
            for (const auto &aux : plan.aux_files) {
                written.push_back(aux);
                ktq::write_file_atomically(out_dir, aux, ktq::read_text_file(m->checkpoint().dir() + "/" + aux));
            }
            store.commit();
        } catch (...) {
            for (const auto &f : written) ::unlink((std::string(out_dir) + "/" + f).c_str());
            throw;
        }
    });
}

}  // extern "C"
