#include "runtime/file_hash.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include <openssl/evp.h>

#include "runtime/error.h"

namespace ktq {

std::string file_sha256_hex(const std::string &path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(KTQ_ERR_IO, path + ": cannot open to hash it: " + std::strerror(errno));
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX *)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
        ::close(fd);
        fail(KTQ_ERR_INTERNAL, "OpenSSL could not start a SHA-256 digest");
    }
    std::vector<unsigned char> buf(8u << 20);
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int e = errno;
            ::close(fd);
            fail(KTQ_ERR_IO, path + ": read failed while hashing: " + std::strerror(e));
        }
        if (n == 0) break;
        EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
    }
    ::close(fd);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx.get(), digest, &len);
    static const char *hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 15];
    }
    return out;
}

std::vector<std::string> files_sha256_hex(const std::vector<std::string> &paths, unsigned threads) {
    std::vector<std::string> out(paths.size());
    std::vector<std::string> errors(paths.size());
    std::atomic<size_t> next{0};
    auto work = [&] {
        for (size_t i; (i = next.fetch_add(1)) < paths.size();) {
            try {
                out[i] = file_sha256_hex(paths[i]);
            } catch (const Error &e) {
                errors[i] = e.what();
            }
        }
    };
    const size_t n = std::min<size_t>(threads ? threads : paths.size(), paths.size());
    std::vector<std::thread> pool;
    for (size_t t = 1; t < n; ++t) pool.emplace_back(work);
    work();
    for (auto &t : pool) t.join();
    for (const auto &e : errors)
        if (!e.empty()) fail(KTQ_ERR_IO, e);
    return out;
}

}  // namespace ktq
