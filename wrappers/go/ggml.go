package ktq

import (
	"fmt"

	"github.com/ktq/ktq/wrappers/go/internal/ktqswig"
)

// String is the type's ggml name ("Q4_K", "BF16", ...), or GGMLType(N) for a
// number libktq does not know.
func (t GGMLType) String() string {
	if name := ktqswig.Ktqs_ggml_type_name(int(t)); name != "" && name != "UNKNOWN" {
		return name
	}
	return fmt.Sprintf("GGMLType(%d)", int(t))
}

// BlockSize is the number of values per block (1 for F32, F16, BF16; 32 for
// Q4_0 ... Q8_0; 256 for the K-quants); 0 for types libktq does not
// implement.
func (t GGMLType) BlockSize() int { return int(ktqswig.Ktqs_ggml_block_size(int(t))) }

// TypeSize is the number of bytes per block; 0 for types libktq does not
// implement.
func (t GGMLType) TypeSize() int { return int(ktqswig.Ktqs_ggml_type_size(int(t))) }

// ggmlBytes is the byte size of n values of t (an error unless n is a whole
// number of blocks).
func ggmlBytes(t GGMLType, n int) (int, error) {
	var size int64
	err := call(func(res ktqswig.Ktqs_result) { size = ktqswig.Ktqs_ggml_bytes(int(t), int64(n), res) })
	if err != nil {
		return 0, err
	}
	return int(size), nil
}

// QuantizeBlocks encodes src as ggml blocks of type t, byte-identical to
// ggml's reference quantizers (quantize_row_*_ref). len(src) must be a whole
// number of blocks (t.BlockSize()).
func QuantizeBlocks(t GGMLType, src []float32) ([]byte, error) {
	size, err := ggmlBytes(t, len(src))
	if err != nil {
		return nil, err
	}
	dst := make([]byte, size)
	if err := call(func(res ktqswig.Ktqs_result) { ktqswig.Ktqs_ggml_quantize(int(t), src, dst, res) }); err != nil {
		return nil, err
	}
	return dst, nil
}

// QuantizeRows encodes src, rows of nPerRow values, as ggml blocks of type
// t with per-column importance (an imatrix's nPerRow values for this weight,
// or one expert's slice): bit-identical to llama-quantize with that imatrix.
// Types where ggml ignores importance (F32, F16, BF16, Q8_0) give
// QuantizeBlocks' bytes.
func QuantizeRows(t GGMLType, src []float32, nPerRow int, importance []float32) ([]byte, error) {
	if nPerRow <= 0 || len(src)%nPerRow != 0 {
		return nil, &Error{Status: StatusInvalidArgument,
			Message: fmt.Sprintf("%d values are not whole rows of %d", len(src), nPerRow)}
	}
	size, err := ggmlBytes(t, len(src))
	if err != nil {
		return nil, err
	}
	dst := make([]byte, size)
	if err := call(func(res ktqswig.Ktqs_result) {
		ktqswig.Ktqs_ggml_quantize_rows(int(t), src, int64(nPerRow), importance, dst, res)
	}); err != nil {
		return nil, err
	}
	return dst, nil
}

// DequantizeBlocks decodes n values of type t from src, which must hold
// exactly n / t.BlockSize() blocks (n / t.BlockSize() * t.TypeSize() bytes).
func DequantizeBlocks(t GGMLType, src []byte, n int) ([]float32, error) {
	size, err := ggmlBytes(t, n)
	if err != nil {
		return nil, err
	}
	if len(src) != size {
		return nil, &Error{Status: StatusInvalidArgument,
			Message: fmt.Sprintf("%d values of %v are %d bytes, not %d", n, t, size, len(src))}
	}
	dst := make([]float32, n)
	if err := call(func(res ktqswig.Ktqs_result) { ktqswig.Ktqs_ggml_dequantize(int(t), src, dst, res) }); err != nil {
		return nil, err
	}
	return dst, nil
}
