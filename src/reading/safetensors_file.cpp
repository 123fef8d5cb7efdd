#include "reading/safetensors_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

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
    ::close(fd);
    if (map_ == MAP_FAILED) {
        map_ = nullptr;
        fail_errno(map_errno, display + ": cannot mmap");
    }
    data_ = static_cast<const uint8_t *>(map_);

    try {
        SafetensorsHeader header = parse_safetensors_header(data_, size_, display, max_header_bytes);
        tensors_ = std::move(header.tensors);
        metadata_ = std::move(header.metadata);
        data_ += header.data_start;
    } catch (...) {
        munmap(map_, size_);
        map_ = nullptr;
        throw;
    }
}

SafetensorsFile::~SafetensorsFile() {
    if (map_) munmap(map_, size_);
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
