#include "writers/safetensors_writer.h"

#include "quant/ggml_blocks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "reading/dtype.h"
#include "runtime/error.h"

namespace ktq {

namespace {

constexpr const char *kPartial = kPartialSuffix;
// Writes from this size on start their writeback at once (smaller ones, such as scales, are left to the
// layer's fdatasync: one system call each would cost more than it saves).
constexpr size_t kWritebackHintBytes = 256 << 10;

std::string shard_name(size_t i, size_t n) {
    if (n == 1) return "model.safetensors";
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
    return buf;
}

}  // namespace

void pwrite_all(int fd, const void *data, size_t bytes, uint64_t offset, const std::string &what) {
    const char *p = static_cast<const char *>(data);
    while (bytes > 0) {
        ssize_t n = ::pwrite(fd, p, bytes, static_cast<off_t>(offset));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno(errno, what);
        }
        p += n;
        bytes -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
    }
}

uint64_t OutputTensor::nbytes() const {
    if (gguf_type >= 0) {
        const GgmlTypeTraits *t = ggml_traits(static_cast<ktq_ggml_type>(gguf_type));
        uint64_t n = 1;
        for (int64_t d : shape) n *= static_cast<uint64_t>(d);
        return t ? n / t->block_size * t->type_size : 0;
    }
    uint64_t n = dtype_size(dtype);
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    return n;
}

std::vector<std::vector<const OutputTensor *>> group_into_shards(const std::vector<const OutputTensor *> &tensors,
                                                                 uint64_t max_shard_bytes) {
    std::vector<std::vector<const OutputTensor *>> groups(1);
    uint64_t in_group = 0;
    for (const OutputTensor *t : tensors) {
        if (!groups.back().empty() && in_group + t->nbytes() > max_shard_bytes) {
            groups.emplace_back();
            in_group = 0;
        }
        groups.back().push_back(t);
        in_group += t->nbytes();
    }
    return groups;
}

void fsync_dir(const std::string &dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

void write_file_atomically(const std::string &dir, const std::string &name, const std::string &content) {
    const std::string final_path = dir + "/" + name, tmp = final_path + kPartial;
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail_errno(errno, tmp + ": cannot create");
    try {
        pwrite_all(fd, content.data(), content.size(), 0, tmp + ": write failed");
        if (::fsync(fd) != 0) fail_errno(errno, tmp + ": fsync failed");
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        fail_errno(e, final_path + ": rename failed");
    }
}

ShardedSafetensorsWriter::ShardedSafetensorsWriter(const std::string &dir,
                                                   const std::vector<const OutputTensor *> &tensors,
                                                   uint64_t max_shard_bytes, bool reuse_partial)
    : ShardedSafetensorsWriter(dir, group_into_shards(tensors, max_shard_bytes), true, reuse_partial) {}

ShardedSafetensorsWriter::ShardedSafetensorsWriter(const std::string &dir,
                                                   const std::vector<std::vector<const OutputTensor *>> &groups,
                                                   bool pt_metadata, bool reuse_partial)
    : dir_(dir) {
    for (const auto &group : groups)
        for (const OutputTensor *t : group) payload_bytes_ += t->nbytes();

    try {
        for (size_t g = 0; g < groups.size(); ++g) {
            Shard shard;
            shard.name = shard_name(g, groups.size());
            nlohmann::ordered_json header = nlohmann::ordered_json::object();
            if (pt_metadata) header["__metadata__"] = {{"format", "pt"}};
            uint64_t offset = 0;
            for (const OutputTensor *t : groups[g]) {
                header[t->name] = {{"dtype", dtype_name(t->dtype)},
                                   {"shape", t->shape},
                                   {"data_offsets", {offset, offset + t->nbytes()}}};
                offset += t->nbytes();
            }
            std::string text = header.dump();
            while (text.size() % 8 != 0) text.push_back(' ');  // keep the payload 8-byte aligned
            shard.data_start = 8 + text.size();
            for (const OutputTensor *t : groups[g]) {
                placement_[t->name] = Placement{g, 0, t->nbytes()};
                weight_map_[t->name] = shard.name;
            }
            offset = 0;
            for (const OutputTensor *t : groups[g]) {
                placement_[t->name].offset = shard.data_start + offset;
                offset += t->nbytes();
            }

            const std::string tmp = dir_ + "/" + shard.name + kPartial;
            const uint64_t total = shard.data_start + offset;
            unsigned char len_bytes[8];
            for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(text.size() >> (8 * i));
            const std::string head = std::string(reinterpret_cast<const char *>(len_bytes), 8) + text;
            if (reuse_partial) {
                // A run killed while committing renamed some shards already;
                // the journal says the folder is mid-conversion, so they are ours.
                const std::string final_path = dir_ + "/" + shard.name;
                if (::access(tmp.c_str(), F_OK) != 0 && ::access(final_path.c_str(), F_OK) == 0)
                    ::rename(final_path.c_str(), tmp.c_str());
                shard.fd = ::open(tmp.c_str(), O_RDWR | O_CLOEXEC);
                if (shard.fd < 0) fail(KTQ_ERR_STATE, tmp + ": partial file of the interrupted run is missing");
                shards_.push_back(shard);
                names_.push_back(shard.name);
                struct stat st {};
                std::string on_disk(head.size(), '\0');
                if (fstat(shard.fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != total ||
                    ::pread(shard.fd, on_disk.data(), head.size(), 0) != static_cast<ssize_t>(head.size()) ||
                    on_disk != head)
                    fail(KTQ_ERR_STATE, tmp + ": partial file does not match the plan");
                continue;
            }
            shard.fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (shard.fd < 0) fail_errno(errno, tmp + ": cannot create");
            shards_.push_back(shard);
            names_.push_back(shard.name);
            // Reserve the space now: a full disk fails here, not hours later.
            if (::fallocate(shard.fd, 0, 0, static_cast<off_t>(total)) != 0) {
                int e = errno;
                if (e != EOPNOTSUPP && e != ENOSYS) fail_errno(e, tmp + ": cannot reserve " + std::to_string(total) + " bytes");
                if (::ftruncate(shard.fd, static_cast<off_t>(total)) != 0) fail_errno(errno, tmp + ": cannot resize");
            }
            pwrite_all(shard.fd, head.data(), head.size(), 0, tmp + ": write failed");
        }
    } catch (...) {
        if (reuse_partial) keep_partial_ = true;  // never delete what we were asked to resume
        abort();
        throw;
    }
}

void ShardedSafetensorsWriter::sync_data() {
    for (const Shard &s : shards_)
        if (s.fd >= 0 && ::fdatasync(s.fd) != 0) fail_errno(errno, dir_ + "/" + s.name + kPartial + ": fdatasync failed");
}

ShardedSafetensorsWriter::~ShardedSafetensorsWriter() { abort(); }

void ShardedSafetensorsWriter::write(const OutputTensor &tensor, uint64_t offset, const void *data, size_t bytes) {
    auto it = placement_.find(tensor.name);
    if (it == placement_.end()) fail(KTQ_ERR_INTERNAL, "tensor '" + tensor.name + "' is not in the output plan");
    const Placement &p = it->second;
    if (offset + bytes > p.nbytes)
        fail(KTQ_ERR_INTERNAL, "write past the end of output tensor '" + tensor.name + "'");
    const Shard &s = shards_[p.shard];
    pwrite_all(s.fd, data, bytes, p.offset + offset, dir_ + "/" + s.name + kPartial + ": writing '" + tensor.name + "'");
    // Start writing these pages back now rather than at the layer's fdatasync: dirty pages otherwise wait
    // for it (the kernel's background threshold is a tenth of RAM), so the disk would idle while a layer
    // is computed and then hold the next one up. Only a hint: durability still comes from the fdatasync.
    if (bytes >= kWritebackHintBytes)
        ::sync_file_range(s.fd, static_cast<off_t>(p.offset + offset), static_cast<off_t>(bytes), SYNC_FILE_RANGE_WRITE);
}

void ShardedSafetensorsWriter::commit() {
    for (Shard &s : shards_) {
        const std::string tmp = dir_ + "/" + s.name + kPartial;
        if (sync_on_commit_ && ::fsync(s.fd) != 0) fail_errno(errno, tmp + ": fsync failed");
        if (::close(s.fd) != 0) {
            s.fd = -1;
            fail_errno(errno, tmp + ": close failed");
        }
        s.fd = -1;
    }
    for (Shard &s : shards_) {
        const std::string tmp = dir_ + "/" + s.name + kPartial;
        if (::rename(tmp.c_str(), (dir_ + "/" + s.name).c_str()) != 0) fail_errno(errno, tmp + ": rename failed");
        s.renamed = true;
    }
    if (shards_.size() > 1) {
        nlohmann::ordered_json index;
        index["metadata"] = {{"total_size", payload_bytes_}};
        index["weight_map"] = nlohmann::ordered_json::object();
        for (const auto &kv : weight_map_) index["weight_map"][kv.first] = kv.second;
        write_file_atomically(dir_, "model.safetensors.index.json", index.dump(2) + "\n");
    }
    fsync_dir(dir_);
    committed_ = true;
}

void ShardedSafetensorsWriter::abort() noexcept {
    if (committed_) return;
    for (Shard &s : shards_) {
        if (s.fd >= 0) ::close(s.fd);
        s.fd = -1;
        const std::string tmp = dir_ + "/" + s.name + kPartial, final_name = dir_ + "/" + s.name;
        // A commit that failed halfway may have renamed some shards already:
        // they go back to their partial names (or away), so nothing with a
        // final name is left by a failed run.
        if (s.renamed) {
            if (keep_partial_)
                ::rename(final_name.c_str(), tmp.c_str());
            else
                ::unlink(final_name.c_str());
            s.renamed = false;
        } else if (!keep_partial_) {
            ::unlink(tmp.c_str());
        }
    }
}

}  // namespace ktq
