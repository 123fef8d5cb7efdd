// kt-kernel's AWQ expert layout (convert_cpu_weights.py --quant-method awq,
// AWQToColumnMajorConverter; docs/formats/kt-kernel.md section 7): an
// AutoAWQ GEMM-packed expert matrix [rows = out, cols = in] re-packed
// without any arithmetic on values:
//   weight [rows, cols / 8] I32: word w of row o holds q[8w + j][o] in
//          nibble j (natural order, the matrix transposed);
//   qzeros [groups, rows / 8] I32: word w of group g holds z[g][8w + j] in
//          nibble j (AWQ's interleave undone, not transposed);
//   scale  [groups * rows] in the scales' dtype: AutoAWQ's scales flattened.
// AutoAWQ's input: qweight [cols, rows / 8], qzeros [groups, rows / 8], the
// columns of each word interleaved 0, 2, 4, 6, 1, 3, 5, 7 over nibbles 0..7.
#pragma once

#include <cstdint>

namespace ktq::kt_awq {

// The nibble of an AutoAWQ word that holds column c % 8.
int awq_nibble_of_column(uint64_t c);

void repack_weight(const uint32_t *qweight, uint64_t rows, uint64_t cols, uint32_t *out);
void repack_zeros(const uint32_t *qzeros, uint64_t rows, uint64_t groups, uint32_t *out);

}  // namespace ktq::kt_awq
