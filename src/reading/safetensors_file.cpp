#include "reading/safetensors_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <cstring>

#include "runtime/error.h"

namespace ktq {

SafetensorsFile::SafetensorsFile(const std::string &path, const std::string &display,
                                 uint64_t max_header_bytes)
    : path_(path), display_(display) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) fail(KTQ_ERR_NOT_FOUND, display + ": file not found (" + path + ")");
        fail_errno(e, display + ": cannot open");
    }
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        fail_errno(e, display + ": cannot stat");
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(KTQ_ERR_FORMAT, display + ": not a regular file");
    }
    size_ = static_cast<uint64_t>(st.st_size);
    mtime_ns_ = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    if (size_ < 8) {
        ::close(fd);
        parse_safetensors_header(nullptr, size_, display, max_header_bytes);  // reports the truncation
    }
    map_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    if (map_ == MAP_FAILED) {
        ::close(fd);
        map_ = nullptr;
        fail_errno(map_errno, display + ": cannot mmap");
    }
    fd_ = fd;  // kept for copy_out(): large reads by pread, without a page fault per 4 KiB
    data_ = static_cast<const uint8_t *>(map_);

    try {
        SafetensorsHeader header = parse_safetensors_header(data_, size_, display, max_header_bytes);
        tensors_ = std::move(header.tensors);
        metadata_ = std::move(header.metadata);
        data_ += header.data_start;
    } catch (...) {
        munmap(map_, size_);
        map_ = nullptr;
        ::close(fd_);
        fd_ = -1;
        throw;
    }
}

SafetensorsFile::~SafetensorsFile() {
    if (map_) munmap(map_, size_);
    if (fd_ >= 0) ::close(fd_);
}

void SafetensorsFile::copy_out(const uint8_t *src, size_t bytes, void *dst) const {
    // Many threads faulting in pages of one mapping contend in the kernel;
    // pread copies from the page cache without touching the mapping.
    const uint8_t *file_start = static_cast<const uint8_t *>(map_);
    uint64_t offset = static_cast<uint64_t>(src - file_start);
    char *out = static_cast<char *>(dst);
    while (bytes > 0 && fd_ >= 0) {
        const ssize_t n = ::pread(fd_, out, bytes, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out += n;
        offset += static_cast<uint64_t>(n);
        bytes -= static_cast<size_t>(n);
    }
    if (bytes > 0) std::memcpy(out, file_start + offset, bytes);  // no fd, or the read failed: the mapping has it
}

void SafetensorsFile::release(uint64_t begin, uint64_t end) const {
    if (!map_) return;
    const long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = reinterpret_cast<uintptr_t>(data_ + begin);
    uintptr_t hi = reinterpret_cast<uintptr_t>(data_ + end);
    lo = (lo + page - 1) & ~static_cast<uintptr_t>(page - 1);
    hi &= ~static_cast<uintptr_t>(page - 1);
    if (hi > lo) madvise(reinterpret_cast<void *>(lo), hi - lo, MADV_DONTNEED);
}

}  // namespace ktq
