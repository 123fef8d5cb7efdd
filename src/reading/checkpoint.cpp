#include "reading/checkpoint.h"

#include <algorithm>

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/error.h"
#include "runtime/strings.h"

namespace ktq {

namespace {

constexpr const char *kIndexName = "model.safetensors.index.json";
constexpr const char *kSingleName = "model.safetensors";

bool exists(const std::string &path, bool *is_dir = nullptr) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return false;
    if (is_dir) *is_dir = S_ISDIR(st.st_mode);
    return true;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_weight_map(const std::string &text,
                                                                  const std::string &display) {
    using Json = nlohmann::json;
    Json index;
    try {
        index = Json::parse(text);
    } catch (const Json::exception &e) {
        fail(KTQ_ERR_FORMAT, display + ": not valid JSON: " + e.what());
    }
    auto wm = index.is_object() ? index.find("weight_map") : index.end();
    if (!index.is_object() || wm == index.end() || !wm->is_object())
        fail(KTQ_ERR_FORMAT, display + ": no \"weight_map\" object");
    if (wm->empty()) fail(KTQ_ERR_FORMAT, display + ": weight_map is empty");
    std::vector<std::pair<std::string, std::string>> out;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
        const std::string &tensor = it.key();
        if (!it.value().is_string())
            fail(KTQ_ERR_FORMAT, display + ": tensor '" + tensor + "': file name is not a string");
        std::string shard = it.value().get<std::string>();
        if (!is_safe_relative_path(shard))
            fail(KTQ_ERR_FORMAT, display + ": tensor '" + tensor + "': shard path '" + shard +
                                     "' leaves the model folder");
        out.emplace_back(tensor, std::move(shard));
    }
    return out;
}

bool is_safe_relative_path(const std::string &name) {
    if (name.empty() || name[0] == '/' || name.find('\\') != std::string::npos ||
        name.find('\0') != std::string::npos)
        return false;
    std::stringstream ss(name);
    std::string part;
    while (std::getline(ss, part, '/'))
        if (part.empty() || part == "." || part == "..") return false;
    return name.back() != '/';
}

Checkpoint::Checkpoint(const std::string &path, uint64_t max_header_bytes) {
    bool is_dir = false;
    if (path.empty() || !exists(path, &is_dir)) fail(KTQ_ERR_NOT_FOUND, path + ": no such file or folder");
    if (!is_dir) {
        if (!ends_with(path, ".safetensors"))
            fail(KTQ_ERR_INVALID_ARGUMENT, path + ": expected a model folder or a .safetensors file");
        auto slash = path.rfind('/');
        dir_ = slash == std::string::npos ? "." : path.substr(0, slash);
        open_single(path, path.substr(slash == std::string::npos ? 0 : slash + 1), max_header_bytes);
    } else {
        dir_ = path;
        while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
        if (exists(dir_ + "/" + kIndexName))
            open_index(dir_ + "/" + kIndexName, max_header_bytes);
        else if (exists(dir_ + "/" + kSingleName))
            open_single(dir_ + "/" + kSingleName, kSingleName, max_header_bytes);
        else
            fail(KTQ_ERR_NOT_FOUND, dir_ + ": neither " + kSingleName + " nor " + kIndexName +
                                        " found (only safetensors checkpoints are supported)");
    }
    for (const auto &kv : tensors_) {
        names_.push_back(kv.first);
        total_bytes_ += kv.second.entry->nbytes();
    }
}

void Checkpoint::open_single(const std::string &file, const std::string &display, uint64_t max_header_bytes) {
    files_.push_back(std::make_unique<SafetensorsFile>(file, display, max_header_bytes));
    for (const auto &t : files_.back()->tensors()) tensors_[t.name] = TensorRef{files_.back().get(), &t};
}

void Checkpoint::open_index(const std::string &index_path, uint64_t max_header_bytes) {
    std::ifstream in(index_path, std::ios::binary);
    if (!in) fail(KTQ_ERR_IO, std::string(kIndexName) + ": cannot open");
    std::ostringstream text;
    text << in.rdbuf();
    const auto weight_map = parse_weight_map(text.str(), kIndexName);

    std::map<std::string, const SafetensorsFile *> by_file;
    for (const auto &[tensor, shard] : weight_map) {
        auto found = by_file.find(shard);
        if (found == by_file.end()) {
            std::string full = dir_ + "/" + shard;
            if (!exists(full))
                fail(KTQ_ERR_NOT_FOUND, std::string(kIndexName) + ": shard '" + shard + "' (holding tensor '" +
                                            tensor + "') is missing from " + dir_);
            files_.push_back(std::make_unique<SafetensorsFile>(full, shard, max_header_bytes));
            found = by_file.emplace(shard, files_.back().get()).first;
        }
        const SafetensorsFile *file = found->second;
        const auto &entries = file->tensors();
        auto e = std::lower_bound(entries.begin(), entries.end(), tensor,
                                  [](const TensorEntry &t, const std::string &n) { return t.name < n; });
        if (e == entries.end() || e->name != tensor)
            fail(KTQ_ERR_FORMAT, std::string(kIndexName) + ": tensor '" + tensor + "' is listed in shard '" + shard +
                                     "' but that file does not contain it");
        tensors_[tensor] = TensorRef{file, &*e};
    }
}

void Checkpoint::add_virtual(TensorEntry entry, const SafetensorsFile *file, const std::vector<std::string> &hidden) {
    for (const std::string &h : hidden) {
        auto it = std::lower_bound(names_.begin(), names_.end(), h);
        if (it != names_.end() && *it == h) names_.erase(it);
    }
    const std::string name = entry.name;
    if (tensors_.count(name)) fail(KTQ_ERR_FORMAT, dir_ + ": tensor '" + name + "' is stored and also packed");
    virtual_entries_.push_back(std::move(entry));
    tensors_[name] = TensorRef{file, &virtual_entries_.back()};
    names_.insert(std::lower_bound(names_.begin(), names_.end(), name), name);
}

const TensorRef *Checkpoint::find(const std::string &name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

const TensorRef &Checkpoint::at(const std::string &name) const {
    const TensorRef *ref = find(name);
    if (!ref) fail(KTQ_ERR_NOT_FOUND, dir_ + ": no tensor named '" + name + "'");
    return *ref;
}

}  // namespace ktq
