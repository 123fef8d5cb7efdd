// GgufFileStore - the TensorStore of the GGUF format: one file,
// "<work dir>/model.gguf.ktq-partial", whose header (key-values and tensor
// infos, every offset known from the plan) is written at open; tensors are
// written at their offsets by any thread; commit() fsyncs and renames the
// file to its final path (outside the work folder). Reopened as is to
// resume an interrupted run when its header matches the plan.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "writers/gguf_format.h"
#include "writers/tensor_store.h"

namespace ktq {

class GgufFileStore : public TensorStore {
public:
    GgufFileStore(const std::string &work_dir, const std::string &final_path,
                  const std::vector<const OutputTensor *> &tensors, const gguf::Metadata &metadata, bool reuse_partial);
    ~GgufFileStore() override;

    void write(const OutputTensor &tensor, uint64_t offset, const void *data, size_t bytes) override;
    void sync_data() override;
    void set_keep_partial(bool keep) override { keep_partial_ = keep; }
    void commit() override;
    void abort() noexcept override;

private:
    std::string partial_, final_;
    int fd_ = -1;
    std::map<std::string, std::pair<uint64_t, uint64_t>> placement_;  // name -> (file offset, bytes)
    bool committed_ = false;
    bool keep_partial_ = false;
};

}  // namespace ktq
