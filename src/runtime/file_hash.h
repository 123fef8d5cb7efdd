// SHA-256 of whole files, through OpenSSL's libcrypto: what `sha256sum`
// prints, and for a checkpoint's safetensors shards what the Hugging Face
// hub shows as each file's LFS object id - so a converted file can name the
// exact source it came from.
#pragma once

#include <string>
#include <vector>

namespace ktq {

// Lower-case hex digest of the file at `path`; KTQ_ERR_IO naming the file
// when it cannot be read.
std::string file_sha256_hex(const std::string &path);

// The digests of `paths`, computed on up to `threads` threads (0 = one per
// file), in the order given.
std::vector<std::string> files_sha256_hex(const std::vector<std::string> &paths, unsigned threads);

}  // namespace ktq
