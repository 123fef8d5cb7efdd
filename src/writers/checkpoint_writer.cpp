#include "writers/checkpoint_writer.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "reading/dtype.h"
#include "runtime/error.h"
#include "runtime/files.h"
#include "runtime/strings.h"
#include "writers/gguf_file_store.h"
#include "writers/loose_file_store.h"

namespace ktq {

namespace {

void make_dirs(const std::string &dir) {
    std::string partial;
    std::stringstream ss(dir);
    std::string part;
    if (!dir.empty() && dir[0] == '/') partial = "/";
    while (std::getline(ss, part, '/')) {
        if (part.empty()) continue;
        partial += part + "/";
        if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) fail_errno(errno, dir + ": cannot create folder");
    }
}

std::string real(const std::string &p) {
    char buf[PATH_MAX];
    return realpath(p.c_str(), buf) ? std::string(buf) : p;
}

// Files of a model folder that are not weights: tokenizer, generation config,
// chat template, remote code. Everything a loader needs besides the tensors.
bool is_aux_file(const std::string &name) {
    // Dotfiles (our own journal, .gitattributes, editor state) are not model files.
    if (name.empty() || name[0] == '.') return false;
    if (name == "config.json" || name == "model.safetensors.index.json") return false;
    for (const char *weights : {".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack", ".ktq-partial"})
        if (ends_with(name, weights)) return false;
    return true;
}

bool is_partial_state(const std::string &name) { return ends_with(name, ".ktq-partial") || name == kJournalName; }
bool is_loose_layer_folder(const std::string &name) { return name.rfind("_layer_", 0) == 0; }

}  // namespace

void prepare_output_dir(const std::string &dir, const std::string &model_dir, bool overwrite, bool resume) {
    if (dir.empty()) fail(KTQ_ERR_INVALID_ARGUMENT, "output folder name is empty");
    make_dirs(dir);
    if (real(dir) == real(model_dir))
        fail(KTQ_ERR_INVALID_ARGUMENT, dir + ": output folder is the input model's folder");
    const auto existing = list_dir(dir);
    if (overwrite) {
        remove_loose_layout(dir);
        for (const auto &name : existing)
            if (ends_with(name, ".safetensors") || is_partial_state(name) || name == "model.safetensors.index.json")
                ::unlink((dir + "/" + name).c_str());
        return;
    }
    const bool has_journal = std::find(existing.begin(), existing.end(), kJournalName) != existing.end();
    // The journal marks the folder as ktq's own: whatever else is there (a
    // run killed while renaming its files) is rewritten by the resumed run.
    if (resume && has_journal) return;
    for (const auto &name : existing) {
        if (resume && (is_partial_state(name) || is_loose_layer_folder(name))) continue;
        if (has_journal) {
            auto journal = load_journal(dir);
            fail(KTQ_ERR_INVALID_ARGUMENT,
                 dir + (journal && journal->complete ? ": already holds a finished ktq conversion"
                                                     : ": holds an interrupted ktq conversion; resume it") +
                     ", or allow overwriting to start over");
        }
        fail(KTQ_ERR_INVALID_ARGUMENT, dir + ": output folder is not empty (" + name +
                                           ", ...); choose another or allow overwriting");
    }
}

bool file_exists(const std::string &path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_text_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(KTQ_ERR_IO, path + ": cannot open");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

uint64_t default_max_shard_bytes() { return 5000000000ull; }

CheckpointWriter::CheckpointWriter(const Model &model, const std::string &out_dir, const ktq_writer_options &opts,
                                   OutputPlan plan)
    : model_(model), out_dir_(out_dir), opts_(opts), plan_(std::move(plan)) {
    prepare_output_dir(out_dir_, model.checkpoint().dir(), opts.overwrite != 0, opts.resume != 0);
    const int layers = static_cast<int>(model.arch().layers.size());
    by_layer_.assign(static_cast<size_t>(layers) + 1, {});
    std::vector<const OutputTensor *> ordered;
    for (const auto &t : tensors_) {
        by_layer_[static_cast<size_t>(t.layer + 1)].push_back(&t);
        ordered.push_back(&t);
    }
    done_.assign(by_layer_.size(), false);
    const uint64_t max_shard = opts.max_shard_bytes ? opts.max_shard_bytes : default_max_shard_bytes();
    for (const OutputTensor *t : ordered) output_bytes_ += t->nbytes();
    std::vector<std::vector<const OutputTensor *>> groups;
    for (const auto &shard : plan_.shards) {
        groups.emplace_back();
        for (size_t i : shard) groups.back().push_back(&tensors_.at(i));
    }
    if (groups.empty()) groups = group_into_shards(ordered, max_shard);
    output_files_ = plan_.loose_files ? ordered.size() : plan_.gguf_metadata ? 1 : groups.size();
    auto open_store = [&](bool reuse) -> std::unique_ptr<TensorStore> {
        if (plan_.loose_files) return std::make_unique<LooseFileStore>(out_dir_, ordered, reuse);
        if (plan_.gguf_metadata)
            return std::make_unique<GgufFileStore>(out_dir_, plan_.gguf_final_path, ordered, *plan_.gguf_metadata, reuse);
        return std::make_unique<ShardedSafetensorsWriter>(out_dir_, groups, plan_.pt_metadata, reuse);
    };

    // The plan's fingerprint: a journal only applies to the very same output.
    std::string fingerprint = plan_.description + " " + std::to_string(max_shard) + "\n";
    journal_.fingerprint = fingerprint_of(fingerprint);
    // An interrupted run also only continues with the very same input files
    // (a re-downloaded or fine-tuned checkpoint of the same shapes must not be
    // mixed with the old one).
    std::string inputs;
    for (const auto &file : model.checkpoint().files())
        inputs += file->display_name() + " " + std::to_string(file->file_size()) + " " +
                  std::to_string(file->mtime_ns()) + "\n";
    journal_.inputs = fingerprint_of(inputs);

    if (opts.resume) {
        auto previous = load_journal(out_dir_);
        if (previous && (previous->fingerprint != journal_.fingerprint ||
                         (!previous->complete && previous->inputs != journal_.inputs)))
            fail(KTQ_ERR_STATE, out_dir_ + ": the interrupted conversion there was of another model or with other "
                                           "options; allow overwriting to start over");
        if (previous && previous->complete) {
            // Nothing left to do: the same conversion finished before.
            already_complete_ = true;
            done_.assign(by_layer_.size(), true);
            return;
        }
        if (previous) {
            try {
                shards_ = open_store(true);
                // Until this constructor succeeds, a failure must not delete
                // the files we were asked to resume.
                shards_->set_keep_partial(true);
                journal_.layers_done = previous->layers_done;
            } catch (const Error &e) {
                if (e.status() != KTQ_ERR_STATE) throw;
                shards_.reset();  // partial files gone or damaged: start over
            }
        }
        if (opts.resume_layer > 0) {
            if (!shards_)
                fail(KTQ_ERR_STATE, out_dir_ + ": no interrupted conversion to resume from layer " +
                                        std::to_string(opts.resume_layer));
            for (int l = 0; l < std::min(opts.resume_layer, layers); ++l) journal_.layers_done.insert(l);
        }
        for (int l : journal_.layers_done)
            if (l >= -1 && l < layers) done_[static_cast<size_t>(l + 1)] = true;
    }
    if (!shards_) {
        for (const auto &name : list_dir(out_dir_))
            if (is_partial_state(name)) ::unlink((out_dir_ + "/" + name).c_str());
        shards_ = open_store(false);
        journal_.layers_done.clear();
    }
    save_journal(out_dir_, journal_);
    shards_->set_keep_partial(false);  // from now on abort() decides, by the options
    shards_->set_sync_on_commit(!opts.no_sync);
}

CheckpointWriter::~CheckpointWriter() { abort(); }

void CheckpointWriter::sync_loop() {
    for (;;) {
        std::vector<int> batch;
        {
            std::unique_lock<std::mutex> lock(sync_mu_);
            sync_cv_.wait(lock, [&] { return sync_stop_ || !sync_pending_.empty(); });
            if (sync_pending_.empty()) return;  // stopping, nothing left
            batch.swap(sync_pending_);
        }
        try {
            shards_->sync_data();
            for (int l : batch) journal_.layers_done.insert(l);
            save_journal(out_dir_, journal_);
        } catch (...) {
            std::lock_guard<std::mutex> lock(sync_mu_);
            if (!sync_error_) sync_error_ = std::current_exception();
            return;
        }
    }
}

void CheckpointWriter::stop_syncer() noexcept {
    if (!syncer_.joinable()) return;
    {
        std::lock_guard<std::mutex> lock(sync_mu_);
        sync_stop_ = true;
    }
    sync_cv_.notify_all();
    syncer_.join();
}

void CheckpointWriter::rethrow_sync_error() {
    std::exception_ptr e;
    {
        std::lock_guard<std::mutex> lock(sync_mu_);
        e = sync_error_;
    }
    if (e) std::rethrow_exception(e);
}

const std::vector<const OutputTensor *> &CheckpointWriter::tensors_of_layer(int layer) const {
    if (layer < -1 || layer >= num_layers())
        fail(KTQ_ERR_NOT_FOUND, "layer " + std::to_string(layer) + " does not exist (model has " +
                                    std::to_string(num_layers()) + " layers)");
    return by_layer_[static_cast<size_t>(layer + 1)];
}

void CheckpointWriter::write(const OutputTensor &tensor, uint64_t offset, const void *data, size_t bytes) {
    shards_->write(tensor, offset, data, bytes);
}

void CheckpointWriter::layer_done(int layer) {
    rethrow_sync_error();  // an earlier layer could not be made durable
    done_[static_cast<size_t>(layer + 1)] = true;
    if (opts_.no_layer_sync || opts_.no_sync) {
        // The caller accepted the risk for power loss only: the page cache
        // survives a killed process.
        journal_.layers_done.insert(layer);
        save_journal(out_dir_, journal_);
        return;
    }
    // The journal must never claim bytes that are not on disk: the syncer
    // journals the layer after its fdatasync.
    {
        std::lock_guard<std::mutex> lock(sync_mu_);
        sync_pending_.push_back(layer);
    }
    if (!syncer_.joinable()) syncer_ = std::thread([this] { sync_loop(); });
    sync_cv_.notify_all();
}

bool CheckpointWriter::is_layer_done(int layer) const {
    tensors_of_layer(layer);  // range check
    return done_[static_cast<size_t>(layer + 1)];
}

std::vector<std::string> model_aux_files(const Model &model) {
    std::vector<std::string> out;
    for (const auto &name : list_dir(model.checkpoint().dir()))
        if (is_aux_file(name) && file_exists(model.checkpoint().dir() + "/" + name)) out.push_back(name);
    return out;
}

void CheckpointWriter::finish() {
    if (finished_) fail(KTQ_ERR_STATE, out_dir_ + ": writer already finished");
    if (already_complete_) {
        finished_ = true;
        if (plan_.gguf_metadata) {  // a finished GGUF conversion killed before its work folder went
            ::unlink((out_dir_ + "/" + kJournalName).c_str());
            ::rmdir(out_dir_.c_str());
        }
        return;
    }
    stop_syncer();  // every layer synced and journaled (or the error below)
    rethrow_sync_error();
    for (int l = -1; l < num_layers(); ++l)
        if (!done_[static_cast<size_t>(l + 1)])
            fail(KTQ_ERR_STATE, out_dir_ + ": cannot finish, " +
                                    (l < 0 ? std::string("the non-layer tensors were") : "layer " + std::to_string(l) + " was") +
                                    " not written");
    if (!plan_.config_json.empty()) {
        finals_written_.push_back("config.json");
        write_file_atomically(out_dir_, "config.json", plan_.config_json);
    }
    for (const auto &[name, content] : extra_files_) {
        finals_written_.push_back(name);
        write_file_atomically(out_dir_, name, content);
    }
    if (opts_.copy_aux_files)
        for (const auto &name : plan_.aux_files) {
            finals_written_.push_back(name);
            write_file_atomically(out_dir_, name, read_text_file(model_.checkpoint().dir() + "/" + name));
        }
    shards_->commit();  // weights become visible last
    journal_.complete = true;  // the completion marker, after every final file is in place
    save_journal(out_dir_, journal_);
    fsync_dir(out_dir_);
    finished_ = true;
    if (plan_.gguf_metadata) {  // the GGUF file is in place: its work folder goes
        ::unlink((out_dir_ + "/" + kJournalName).c_str());
        ::rmdir(out_dir_.c_str());
    }
}

void CheckpointWriter::amend_config(const std::function<void(nlohmann::json &)> &edit) {
    if (plan_.config_json.empty()) return;  // formats without a config.json (GGUF)
    nlohmann::json cfg = nlohmann::json::parse(plan_.config_json);
    edit(cfg);
    plan_.config_json = cfg.dump(2) + "\n";
}

void CheckpointWriter::add_file(const std::string &name, std::string content) {
    if (!is_safe_relative_path(name) || name.find('/') != std::string::npos || name == "config.json")
        fail(KTQ_ERR_INTERNAL, "add_file: bad output file name '" + name + "'");
    for (auto &f : extra_files_)
        if (f.first == name) {
            f.second = std::move(content);
            return;
        }
    extra_files_.emplace_back(name, std::move(content));
}

void CheckpointWriter::abort() noexcept {
    stop_syncer();
    if (finished_ || !shards_) return;
    // A finish() that failed halfway wrote config and tokenizer files under
    // their final names: they go (the next finish writes them again).
    for (const auto &name : finals_written_) ::unlink((out_dir_ + "/" + name).c_str());
    if (opts_.keep_partial) {
        shards_->set_keep_partial(true);
    } else {
        ::unlink((out_dir_ + "/" + kJournalName).c_str());
    }
    shards_->abort();
}

}  // namespace ktq
