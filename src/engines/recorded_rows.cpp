#include "engines/recorded_rows.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/error.h"
#include "runtime/files.h"

namespace ktq {

RecordedRows::~RecordedRows() {
    if (map_) munmap(map_, capacity_ * sizeof(float));
    if (fd_ >= 0) ::close(fd_);
}

void RecordedRows::use_file(const std::string &what) {
    if (!memory_.empty()) fail(KTQ_ERR_INTERNAL, what + ": moved to a file after values were recorded");
    file_ = true;
    what_ = what;
}

void RecordedRows::open_file() {
    fd_ = open_unlinked_temp_file("ktq-recorded-", &name_);
    if (fd_ < 0)
        fail(KTQ_ERR_IO, name_ + ": cannot create the file for " + what_ + " (" + std::strerror(errno) +
                             "); set TMPDIR to a folder with room, or raise the memory limit");
}

void RecordedRows::grow(size_t values) {
    if (fd_ < 0) open_file();
    size_t capacity = capacity_ ? capacity_ : size_t{1} << 20;
    while (capacity < values) capacity *= 2;
    const off_t old_bytes = static_cast<off_t>(capacity_ * sizeof(float));
    const off_t bytes = static_cast<off_t>(capacity * sizeof(float));
    // Reserve the blocks now: a write into a mapped page with no disk behind it would be a SIGBUS.
    const int err = ::posix_fallocate(fd_, old_bytes, bytes - old_bytes);
    if (err != 0)
        fail(KTQ_ERR_IO, name_ + " (deleted temporary file of " + what_ + "): cannot reserve " +
                             std::to_string((bytes >> 20) + 1) + " MiB (" + std::strerror(err) +
                             "); set TMPDIR to a folder with more room, or raise the memory limit");
    void *p = map_ ? ::mremap(map_, static_cast<size_t>(old_bytes), static_cast<size_t>(bytes), MREMAP_MAYMOVE)
                   : ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED)
        fail(KTQ_ERR_NO_MEMORY, name_ + " (deleted temporary file of " + what_ + "): cannot map " +
                                    std::to_string((bytes >> 20) + 1) + " MiB (" + std::strerror(errno) + ")");
    map_ = static_cast<float *>(p);
    capacity_ = capacity;
}

void RecordedRows::append(const float *x, size_t n) {
    if (!in_file()) {
        memory_.insert(memory_.end(), x, x + n);
        return;
    }
    if (used_ + n > capacity_) grow(used_ + n);
    std::memcpy(map_ + used_, x, n * sizeof(float));
    used_ += n;
}

}  // namespace ktq
