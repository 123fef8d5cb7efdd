// C API: quantizing single tensors with ggml block types.
#include "api/handles.h"
#include "quant/ggml_blocks.h"

using ktq::fail;
using ktq::guarded;
using ktq::require;

namespace {

const ktq::GgmlTypeTraits &traits_or_fail(ktq_ggml_type type) {
    const ktq::GgmlTypeTraits *t = ktq::ggml_traits(type);
    if (!t) fail(KTQ_ERR_UNSUPPORTED, "ggml type " + std::to_string(static_cast<int>(type)) + " is not implemented");
    return *t;
}

// The checks both directions share: whole blocks, both pointers, and a block
// buffer of `block_bytes` large enough for `n` values.
void check_sizes(const ktq::GgmlTypeTraits &t, size_t n, const void *dst, const void *src, size_t block_bytes) {
    if (n % t.block_size != 0)
        fail(KTQ_ERR_INVALID_ARGUMENT, std::string(t.name) + " needs a multiple of " + std::to_string(t.block_size) +
                                           " values, got " + std::to_string(n));
    require(n == 0 || (dst != nullptr && src != nullptr), "dst or src is NULL");
    const size_t need = n / t.block_size * t.type_size;
    if (block_bytes < need)
        fail(KTQ_ERR_BUFFER_TOO_SMALL, std::string(t.name) + ": " + std::to_string(n) + " values need " +
                                           std::to_string(need) + " bytes of blocks, buffer has " +
                                           std::to_string(block_bytes));
}

}  // namespace

extern "C" {

const char *ktq_ggml_type_name(ktq_ggml_type type) {
    const ktq::GgmlTypeTraits *t = ktq::ggml_traits(type);
    return t ? t->name : "UNKNOWN";
}

size_t ktq_ggml_block_size(ktq_ggml_type type) {
    const ktq::GgmlTypeTraits *t = ktq::ggml_traits(type);
    return t ? t->block_size : 0;
}

size_t ktq_ggml_type_size(ktq_ggml_type type) {
    const ktq::GgmlTypeTraits *t = ktq::ggml_traits(type);
    return t ? t->type_size : 0;
}

ktq_status ktq_quantize_tensor(void *dst, size_t dst_bytes, const float *src, size_t n, ktq_ggml_type type,
                               ktq_error **err) {
    return guarded(err, [&] {
        const ktq::GgmlTypeTraits &t = traits_or_fail(type);
        check_sizes(t, n, dst, src, dst_bytes);
        t.quantize(static_cast<uint8_t *>(dst), src, n / t.block_size);
    });
}

ktq_status ktq_quantize_rows(void *dst, size_t dst_bytes, const float *src, size_t rows, size_t n_per_row,
                             const float *importance, ktq_ggml_type type, ktq_error **err) {
    return guarded(err, [&] {
        const ktq::GgmlTypeTraits &t = traits_or_fail(type);
        if (rows != 0 && n_per_row > SIZE_MAX / rows) fail(KTQ_ERR_INVALID_ARGUMENT, "rows * n_per_row overflows");
        // Each row is its own run of blocks: a row that ends mid-block would leave bytes unwritten.
        if (n_per_row % t.block_size)
            fail(KTQ_ERR_INVALID_ARGUMENT, "rows of " + std::to_string(n_per_row) + " values are not whole " +
                                               t.name + " blocks of " + std::to_string(t.block_size));
        check_sizes(t, rows * n_per_row, dst, src, dst_bytes);
        if (!importance || !t.quantize_importance) {
            t.quantize(static_cast<uint8_t *>(dst), src, rows * n_per_row / t.block_size);
            return;
        }
        const size_t row_bytes = n_per_row / t.block_size * t.type_size;
        for (size_t r = 0; r < rows; ++r)
            t.quantize_importance(static_cast<uint8_t *>(dst) + r * row_bytes, src + r * n_per_row, n_per_row, importance);
    });
}

ktq_status ktq_dequantize_tensor(float *dst, size_t n, const void *src, size_t src_bytes, ktq_ggml_type type,
                                 ktq_error **err) {
    return guarded(err, [&] {
        const ktq::GgmlTypeTraits &t = traits_or_fail(type);
        check_sizes(t, n, dst, src, src_bytes);
        t.dequantize(dst, static_cast<const uint8_t *>(src), n / t.block_size);
    });
}

}  // extern "C"
