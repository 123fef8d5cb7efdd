#include "quant/kt_awq.h"

namespace ktq::kt_awq {

int awq_nibble_of_column(uint64_t c) {
    static constexpr int kNibble[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // AutoAWQ packs columns 0,2,4,6,1,3,5,7
    return kNibble[c % 8];
}

namespace {

uint32_t awq_code(const uint32_t *packed, uint64_t row, uint64_t words_per_row, uint64_t col) {
    return (packed[row * words_per_row + col / 8] >> (4 * awq_nibble_of_column(col))) & 15u;
}

}  // namespace

void repack_weight(const uint32_t *qweight, uint64_t rows, uint64_t cols, uint32_t *out) {
    const uint64_t in_words = rows / 8, out_words = cols / 8;
    for (uint64_t o = 0; o < rows; ++o)
        for (uint64_t w = 0; w < out_words; ++w) {
            uint32_t word = 0;
            for (uint64_t j = 0; j < 8; ++j) word |= awq_code(qweight, 8 * w + j, in_words, o) << (4 * j);
            out[o * out_words + w] = word;
        }
}

void repack_zeros(const uint32_t *qzeros, uint64_t rows, uint64_t groups, uint32_t *out) {
    const uint64_t words = rows / 8;
    for (uint64_t g = 0; g < groups; ++g)
        for (uint64_t w = 0; w < words; ++w) {
            uint32_t word = 0;
            for (uint64_t j = 0; j < 8; ++j) word |= awq_code(qzeros, g, words, 8 * w + j) << (4 * j);
            out[g * words + w] = word;
        }
}

}  // namespace ktq::kt_awq
