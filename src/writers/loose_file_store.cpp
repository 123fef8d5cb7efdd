#include "writers/loose_file_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include "runtime/error.h"
#include "runtime/files.h"
#include "runtime/strings.h"
#include "writers/safetensors_writer.h"

namespace ktq {

namespace {

void make_dir(const std::string &path) {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) fail_errno(errno, path + ": cannot create folder");
}



bool is_layout_folder(const std::string &name, const char *prefix) {
    if (name.rfind(prefix, 0) != 0 || name.size() == std::string(prefix).size()) return false;
    for (size_t i = std::string(prefix).size(); i < name.size(); ++i)
        if (name[i] < '0' || name[i] > '9') return false;
    return true;
}

constexpr const char *kStaging = ".layers.ktq-partial";

void remove_layers(const std::string &dir);

}  // namespace

void remove_loose_layout(const std::string &dir) {
    remove_layers(dir);
    remove_layers(dir + "/" + kStaging);
    ::rmdir((dir + "/" + kStaging).c_str());
}

namespace {

void remove_layers(const std::string &dir) {
    for (const auto &layer : list_dir(dir)) {
        const std::string lpath = dir + "/" + layer;
        if (!is_layout_folder(layer, "_layer_") || !is_dir(lpath)) continue;
        for (const auto &numa : list_dir(lpath)) {
            const std::string npath = lpath + "/" + numa;
            if (!is_layout_folder(numa, "_numa_") || !is_dir(npath)) continue;
            for (const auto &f : list_dir(npath))
                if (ends_with(f, ".kt") || ends_with(f, kPartialSuffix)) ::unlink((npath + "/" + f).c_str());
            ::rmdir(npath.c_str());
        }
        ::rmdir(lpath.c_str());
    }
}

}  // namespace

std::string LooseFileStore::staging() const { return dir_ + "/" + kStaging; }

std::vector<std::string> LooseFileStore::layer_folders() const {
    std::set<int> layers;
    for (const OutputTensor *t : tensors_) layers.insert(t->layer);
    std::vector<std::string> out;
    for (int l : layers) out.push_back("_layer_" + std::to_string(l));
    return out;
}

LooseFileStore::LooseFileStore(const std::string &dir, const std::vector<const OutputTensor *> &tensors,
                               bool reuse_partial)
    : dir_(dir), tensors_(tensors) {
    if (!reuse_partial) {
        remove_loose_layout(dir_);
    } else {
        // A run killed while committing moved some layer folders into place
        // already; the journal says the folder is mid-conversion, so they go
        // back to the staging folder and are committed again.
        make_dir(staging());
        for (const auto &layer : layer_folders())
            if (is_dir(dir_ + "/" + layer) && !is_dir(staging() + "/" + layer))
                ::rename((dir_ + "/" + layer).c_str(), (staging() + "/" + layer).c_str());
    }
    uint64_t total = 0;
    std::set<std::string> folders;
    for (const OutputTensor *t : tensors_) {
        if (t->file.empty()) fail(KTQ_ERR_INTERNAL, "tensor '" + t->name + "' has no file in the loose layout");
        total += t->nbytes() + 4096;  // a block of metadata per file, roughly
        for (size_t slash = t->file.find('/'); slash != std::string::npos; slash = t->file.find('/', slash + 1))
            folders.insert(t->file.substr(0, slash));
    }
    struct statvfs vfs {};
    if (::statvfs(dir_.c_str(), &vfs) == 0) {
        const uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
        if (avail < total)
            fail(KTQ_ERR_NO_SPACE, dir_ + ": not enough free space (" + std::to_string(total) + " bytes needed, " +
                                       std::to_string(avail) + " available)");
    }
    make_dir(staging());
    for (const auto &f : folders) make_dir(staging() + "/" + f);  // std::set order: parents first
}

LooseFileStore::~LooseFileStore() { abort(); }

void LooseFileStore::write(const OutputTensor &tensor, uint64_t offset, const void *data, size_t bytes) {
    if (offset + bytes > tensor.nbytes())
        fail(KTQ_ERR_INTERNAL, "write past the end of output tensor '" + tensor.name + "'");
    const std::string path = staging() + "/" + tensor.file;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail_errno(errno, path + ": cannot create");
    try {
        pwrite_all(fd, data, bytes, offset, path + ": writing '" + tensor.name + "'");
    } catch (...) {
        ::close(fd);
        throw;
    }
    if (::close(fd) != 0) fail_errno(errno, path + ": close failed");
}

void LooseFileStore::sync_data() {
    int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail_errno(errno, dir_ + ": cannot open");
    const int rc = ::syncfs(fd);
    const int e = errno;
    ::close(fd);
    if (rc != 0) fail_errno(e, dir_ + ": syncfs failed");
}

void LooseFileStore::commit() {
    for (const OutputTensor *t : tensors_) {
        const std::string path = staging() + "/" + t->file;
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0)
            fail(KTQ_ERR_STATE, path + ": missing from the partial output");
        if (static_cast<uint64_t>(st.st_size) != t->nbytes())
            fail(KTQ_ERR_STATE, path + ": has " + std::to_string(st.st_size) + " bytes, " +
                                    std::to_string(t->nbytes()) + " planned (damaged partial output)");
    }
    if (sync_on_commit_) sync_data();
    for (const auto &layer : layer_folders()) {
        if (::rename((staging() + "/" + layer).c_str(), (dir_ + "/" + layer).c_str()) != 0)
            fail_errno(errno, staging() + "/" + layer + ": rename failed");
        renamed_.push_back(layer);
        fsync_dir(dir_);  // this layer is visible before the next one moves
    }
    ::rmdir(staging().c_str());
    fsync_dir(dir_);
    committed_ = true;
}

void LooseFileStore::abort() noexcept {
    if (committed_) return;
    // A commit that failed halfway: the layers it moved go back (or away),
    // so a failed run leaves no final-named layer folder.
    for (const auto &layer : renamed_)
        ::rename((dir_ + "/" + layer).c_str(), (staging() + "/" + layer).c_str());
    renamed_.clear();
    if (keep_partial_) return;
    try {
        remove_loose_layout(dir_);
    } catch (...) {
    }
}

}  // namespace ktq
