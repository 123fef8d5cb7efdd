package ktq

import (
	"fmt"
	"math"
	"sync"

	"github.com/ktq/ktq/wrappers/go/internal/ktqswig"
)

// GPTQ quantizes one Linear layer with GPTQ from inputs the caller's own
// forward pass produced: AddBatch the layer's inputs, then Quantize its
// weights into compressed-tensors arrays (the algorithm is llm-compressor
// 0.14's; see docs/gptq.md). Whole checkpoints are better quantized with
// Convert and ConvertOptions.GPTQ, which runs ktq's own forward pass.
//
// A GPTQ may be used from several goroutines: its calls are serialized.
type GPTQ struct {
	mu         sync.Mutex
	raw        ktqswig.Struct_SS_ktqs_gptq
	inFeatures int
}

// NewGPTQ makes a Hessian accumulator for a Linear with inFeatures inputs.
func NewGPTQ(inFeatures int) (*GPTQ, error) {
	if inFeatures <= 0 {
		return nil, &Error{Status: StatusInvalidArgument, Message: fmt.Sprintf("GPTQ: %d input features", inFeatures)}
	}
	var raw ktqswig.Struct_SS_ktqs_gptq
	if err := call(func(res ktqswig.Ktqs_result) { raw = ktqswig.Ktqs_gptq_new(uint64(inFeatures), res) }); err != nil {
		return nil, err
	}
	return &GPTQ{raw: raw, inFeatures: inFeatures}, nil
}

// Close releases the accumulator. Closing twice is harmless.
func (g *GPTQ) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.raw != nil {
		ktqswig.Ktqs_gptq_free(g.raw)
		g.raw = nil
	}
	return nil
}

// InFeatures is the number of inputs given to NewGPTQ.
func (g *GPTQ) InFeatures() int { return g.inFeatures }

// AddBatch adds input rows to the Hessian: x is row-major [rows,
// InFeatures()] and must hold a whole number of rows.
func (g *GPTQ) AddBatch(x []float32) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.raw == nil {
		return ErrClosed
	}
	return call(func(res ktqswig.Ktqs_result) { ktqswig.Ktqs_gptq_add_batch(g.raw, x, res) })
}

// Rows is the number of input rows added so far.
func (g *GPTQ) Rows() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.raw == nil {
		return 0, ErrClosed
	}
	var rows uint64
	err := call(func(res ktqswig.Ktqs_result) { rows = ktqswig.Ktqs_gptq_rows_seen(g.raw, res) })
	return rows, err
}

// GPTQQuantizeOptions configure GPTQ.Quantize. The zero value is W4A16 as
// llm-compressor's GPTQModifier runs it: 4 bits, groups of 128, symmetric,
// float32 weights, dampening 0.01, static activation order, on the CPU.
type GPTQQuantizeOptions struct {
	Bits       int  // 2..8; 0 = 4
	GroupSize  int  // weights per scale along a row; -1 = one per row; 0 = 128
	Asymmetric bool // with zero points
	// BF16 says the weights are BF16 values (float32 with the low 16 bits
	// zero, as ReadTensor gives them for a BF16 model); the arithmetic is
	// then a BF16 model's and the scales are rounded to BF16. Weights that
	// are not BF16 values are an error.
	BF16 bool
	// DampeningFrac of the mean Hessian diagonal added to it; 0 = 0.01
	// (llm-compressor's; kt-kernel's convert_gpu_weights.py uses 0.1).
	// Negative values are an error.
	DampeningFrac float64
	// NaturalOrder quantizes the columns in order instead of by descending
	// Hessian diagonal (llm-compressor's actorder=None vs "static").
	NaturalOrder bool
	// Device (DeviceCUDA: CUDA device CUDADevice, with a CUDA build) solves
	// on a GPU, giving the same codes as the CPU for the same Hessian.
	Device     Device
	CUDADevice int
}

// GPTQResult is a quantized weight in compressed-tensors' pack-quantized
// layout (docs/formats/compressed-tensors.md) for [rows, in] weights with
// g groups per row, all row-major.
type GPTQResult struct {
	// Packed is [rows, ceil(in*Bits/32)]: the codes q + 2^(Bits-1) as
	// unsigned Bits-bit fields, LSB first, element i of a row at bit i*Bits
	// of the row's words.
	Packed []int32
	Scales []float32 // [rows, g]
	// ZeroPoints is [ceil(rows*Bits/32), g], packed the same way along the
	// rows; nil when symmetric.
	ZeroPoints  []int32
	Dequantized []float32 // [rows, in]: (q - zero point) * scale, what the codes stand for
	Loss        float64   // GPTQ's loss (sum of the squared errors weighted by the inverse Hessian)
	// RTNFallback reports that the damped Hessian was not positive definite
	// and the weights were rounded to nearest instead (llm-compressor does
	// the same).
	RTNFallback bool
}

// Quantize runs GPTQ on weights (row-major [rows, InFeatures()]) with the
// Hessian of the rows added so far. With no rows added every column is
// "dead" and quantized to zero, as llm-compressor does: add inputs first.
func (g *GPTQ) Quantize(weights []float32, opts GPTQQuantizeOptions) (*GPTQResult, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.raw == nil {
		return nil, ErrClosed
	}
	bits, group, damp := opts.Bits, opts.GroupSize, opts.DampeningFrac
	if bits == 0 {
		bits = 4
	}
	if group == 0 {
		group = 128
	}
	if damp < 0 || math.IsNaN(damp) || math.IsInf(damp, 0) {
		return nil, &Error{Status: StatusInvalidArgument, Message: fmt.Sprintf("GPTQ: dampening fraction %v", damp)}
	}
	if damp == 0 {
		damp = -1 // the library's default
	}
	if len(weights)%g.inFeatures != 0 {
		return nil, &Error{Status: StatusInvalidArgument,
			Message: fmt.Sprintf("%d weights are not a whole number of rows of %d", len(weights), g.inFeatures)}
	}
	rows := len(weights) / g.inFeatures
	symmetric := b2i(!opts.Asymmetric)
	var sizes [3]int
	for which := range sizes {
		var n int64
		if err := call(func(res ktqswig.Ktqs_result) {
			n = ktqswig.Ktqs_ct_size(uint64(rows), uint64(g.inFeatures), bits, group, symmetric, which, res)
		}); err != nil {
			return nil, err
		}
		var err error
		if sizes[which], err = length(n, 4, "compressed-tensors array"); err != nil {
			return nil, err
		}
	}
	r := &GPTQResult{Packed: make([]int32, sizes[0]), Scales: make([]float32, sizes[1]),
		Dequantized: make([]float32, len(weights))}
	if sizes[2] > 0 {
		r.ZeroPoints = make([]int32, sizes[2])
	}
	fallback := make([]int32, 1)
	err := call(func(res ktqswig.Ktqs_result) {
		r.Loss = ktqswig.Ktqs_gptq_quantize(g.raw, weights, bits, group, symmetric, b2i(opts.BF16), damp,
			b2i(opts.NaturalOrder), int(opts.Device), opts.CUDADevice, r.Packed, r.Scales, r.ZeroPoints,
			r.Dequantized, fallback, res)
	})
	if err != nil {
		return nil, err
	}
	r.RTNFallback = fallback[0] != 0
	return r, nil
}
