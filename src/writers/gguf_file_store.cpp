#include "writers/gguf_file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "runtime/error.h"
#include "writers/safetensors_writer.h"

namespace ktq {

GgufFileStore::GgufFileStore(const std::string &work_dir, const std::string &final_path,
                             const std::vector<const OutputTensor *> &tensors, const gguf::Metadata &metadata,
                             bool reuse_partial)
    : partial_(work_dir + "/model.gguf.ktq-partial"), final_(final_path) {
    std::vector<gguf::TensorInfo> infos;
    for (const OutputTensor *t : tensors) {
        gguf::TensorInfo info;
        info.name = t->name;
        for (auto it = t->shape.rbegin(); it != t->shape.rend(); ++it) info.ne.push_back(static_cast<uint64_t>(*it));
        info.type = static_cast<uint32_t>(t->gguf_type);
        info.nbytes = t->nbytes();
        infos.push_back(info);
    }
    uint64_t data_bytes = 0;
    const std::string head = gguf::header(metadata, infos, &data_bytes);
    for (const auto &info : infos) placement_[info.name] = {head.size() + info.offset, info.nbytes};
    const uint64_t total = head.size() + data_bytes;
    try {
        if (reuse_partial) {
            fd_ = ::open(partial_.c_str(), O_RDWR | O_CLOEXEC);
            if (fd_ < 0) fail(KTQ_ERR_STATE, partial_ + ": partial file of the interrupted run is missing");
            struct stat st {};
            std::string on_disk(head.size(), '\0');
            if (fstat(fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) != total ||
                ::pread(fd_, on_disk.data(), head.size(), 0) != static_cast<ssize_t>(head.size()) || on_disk != head)
                fail(KTQ_ERR_STATE, partial_ + ": partial file does not match the plan");
            return;
        }
        fd_ = ::open(partial_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0) fail_errno(errno, partial_ + ": cannot create");
        if (::fallocate(fd_, 0, 0, static_cast<off_t>(total)) != 0) {
            const int e = errno;
            if (e != EOPNOTSUPP && e != ENOSYS) fail_errno(e, partial_ + ": cannot reserve " + std::to_string(total) + " bytes");
            if (::ftruncate(fd_, static_cast<off_t>(total)) != 0) fail_errno(errno, partial_ + ": cannot resize");
        }
        pwrite_all(fd_, head.data(), head.size(), 0, partial_ + ": write failed");
    } catch (...) {
        if (reuse_partial) keep_partial_ = true;
        abort();
        throw;
    }
}

GgufFileStore::~GgufFileStore() { abort(); }

void GgufFileStore::write(const OutputTensor &tensor, uint64_t offset, const void *data, size_t bytes) {
    auto it = placement_.find(tensor.name);
    if (it == placement_.end()) fail(KTQ_ERR_INTERNAL, "tensor '" + tensor.name + "' is not in the GGUF plan");
    if (offset + bytes > it->second.second)
        fail(KTQ_ERR_INTERNAL, "write past the end of GGUF tensor '" + tensor.name + "'");
    pwrite_all(fd_, data, bytes, it->second.first + offset, partial_ + ": writing '" + tensor.name + "'");
}

void GgufFileStore::sync_data() {
    if (fd_ >= 0 && ::fdatasync(fd_) != 0) fail_errno(errno, partial_ + ": fdatasync failed");
}

void GgufFileStore::commit() {
    if (sync_on_commit_ && ::fsync(fd_) != 0) fail_errno(errno, partial_ + ": fsync failed");
    ::close(fd_);
    fd_ = -1;
    if (::rename(partial_.c_str(), final_.c_str()) != 0) fail_errno(errno, final_ + ": rename failed");
    const auto slash = final_.find_last_of('/');
    fsync_dir(slash == std::string::npos ? "." : final_.substr(0, slash));
    committed_ = true;
}

void GgufFileStore::abort() noexcept {
    if (committed_) return;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!keep_partial_) ::unlink(partial_.c_str());
}

}  // namespace ktq
