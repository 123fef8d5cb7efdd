package ktq

import (
	"fmt"
	"math"

	"github.com/ktq/ktq/wrappers/go/internal/ktqswig"
)

// TensorInfo describes one tensor of a checkpoint as it is stored.
type TensorInfo struct {
	Name  string
	File  string  // the .safetensors file (name inside the folder) that holds it
	Dtype string  // as stored: "BF16", "F16", "F32", "F8_E4M3", ...
	Shape []int64 // outermost dimension first
	// NBytes is the stored size; Layer is the decoder layer the tensor
	// belongs to, or -1 (embeddings, final norm, lm_head).
	NBytes uint64
	Layer  int
}

// Numel is the number of elements (the product of Shape; 1 for a scalar).
func (t TensorInfo) Numel() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Proj is one of the three matrices of a routed expert.
type Proj int

// The expert projections (the numbers libktq and kt-kernel use).
const (
	ProjGate Proj = 0
	ProjUp   Proj = 1
	ProjDown Proj = 2
)

// String is "gate", "up" or "down".
func (p Proj) String() string {
	switch p {
	case ProjGate:
		return "gate"
	case ProjUp:
		return "up"
	case ProjDown:
		return "down"
	}
	return fmt.Sprintf("Proj(%d)", int(p))
}

// length checks that n elements of `what` can be allocated as a Go slice.
func length(n int64, elemSize int, what string) (int, error) {
	if n < 0 || uint64(n) > uint64(math.MaxInt)/uint64(elemSize) {
		return 0, &Error{Status: StatusInvalidArgument, Message: fmt.Sprintf("%s: %d elements cannot be allocated", what, n)}
	}
	return int(n), nil
}

// tensorInfo reads the description of tensor `index`; call it with m.mu held.
func (m *Model) tensorInfo(index int64) (TensorInfo, error) {
	var t TensorInfo
	err := call(func(res ktqswig.Ktqs_result) {
		ok := func() bool { return res.GetStatus() == 0 }
		text := func(f string) string {
			if !ok() {
				return ""
			}
			return ktqswig.Ktqs_tensor_text(m.raw, index, f, res)
		}
		num := func(f string) int64 {
			if !ok() {
				return 0
			}
			return ktqswig.Ktqs_tensor_num(m.raw, index, f, res)
		}
		t = TensorInfo{Name: text("name"), File: text("file"), Dtype: text("dtype"), NBytes: uint64(num("nbytes")),
			Layer: int(num("layer"))}
		ndim := num("ndim")
		if !ok() || ndim < 0 || ndim > 8 {
			return
		}
		t.Shape = make([]int64, ndim)
		for d := range t.Shape {
			t.Shape[d] = num(fmt.Sprintf("dim%d", d))
		}
	})
	if err != nil {
		return TensorInfo{}, err
	}
	return t, nil
}

// Tensors lists every tensor of the model in name order (the order of the
// merged index), whatever the shard layout.
func (m *Model) Tensors() ([]TensorInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.raw == nil {
		return nil, ErrClosed
	}
	n := ktqswig.Ktqs_tensor_count(m.raw)
	out := make([]TensorInfo, 0, n)
	for i := int64(0); i < n; i++ {
		t, err := m.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Tensor describes the tensor called name; an absent name is an *Error of
// StatusNotFound naming it.
func (m *Model) Tensor(name string) (TensorInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.raw == nil {
		return TensorInfo{}, ErrClosed
	}
	index, err := m.findTensor(name)
	if err != nil {
		return TensorInfo{}, err
	}
	return m.tensorInfo(index)
}

func (m *Model) findTensor(name string) (int64, error) {
	var index int64
	err := call(func(res ktqswig.Ktqs_result) { index = ktqswig.Ktqs_find_tensor(m.raw, name, res) })
	return index, err
}

// ReadTensor reads the tensor called name as float32 values in row-major
// order: BF16, F16 and F32 exactly, FP8 dequantized by its block scales.
func (m *Model) ReadTensor(name string) ([]float32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.raw == nil {
		return nil, ErrClosed
	}
	index, err := m.findTensor(name)
	if err != nil {
		return nil, err
	}
	var numel int64
	if err := call(func(res ktqswig.Ktqs_result) { numel = ktqswig.Ktqs_tensor_num(m.raw, index, "numel", res) }); err != nil {
		return nil, err
	}
	n, err := length(numel, 4, name)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	if err := call(func(res ktqswig.Ktqs_result) { ktqswig.Ktqs_read_tensor_f32(m.raw, name, out, res) }); err != nil {
		return nil, err
	}
	return out, nil
}

// ExpertShape is the shape [rows, cols] (output features, input features)
// of routed expert `expert`'s projection p in decoder layer `layer`, for
// every architecture libktq knows (fused or per-expert storage alike).
func (m *Model) ExpertShape(layer, expert int, p Proj) (rows, cols int, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.raw == nil {
		return 0, 0, ErrClosed
	}
	return m.expertShape(layer, expert, p)
}

func (m *Model) expertShape(layer, expert int, p Proj) (rows, cols int, err error) {
	var r, c int64
	err = call(func(res ktqswig.Ktqs_result) {
		r = ktqswig.Ktqs_expert_dim(m.raw, layer, expert, int(p), 0, res)
		if res.GetStatus() == 0 {
			c = ktqswig.Ktqs_expert_dim(m.raw, layer, expert, int(p), 1, res)
		}
	})
	if err != nil {
		return 0, 0, err
	}
	if rows, err = length(r, 1, "expert rows"); err != nil {
		return 0, 0, err
	}
	if cols, err = length(c, 1, "expert cols"); err != nil {
		return 0, 0, err
	}
	return rows, cols, nil
}

// ReadExpert reads routed expert `expert`'s projection p in decoder layer
// `layer` as rows x cols float32 values (see ExpertShape), row-major, with
// the same conversions as ReadTensor.
func (m *Model) ReadExpert(layer, expert int, p Proj) ([]float32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.raw == nil {
		return nil, ErrClosed
	}
	rows, cols, err := m.expertShape(layer, expert, p)
	if err != nil {
		return nil, err
	}
	if cols != 0 && rows > math.MaxInt/4/cols {
		return nil, &Error{Status: StatusInvalidArgument, Message: fmt.Sprintf("expert matrix [%d, %d] cannot be allocated", rows, cols)}
	}
	out := make([]float32, rows*cols)
	if err := call(func(res ktqswig.Ktqs_result) {
		ktqswig.Ktqs_read_expert_f32(m.raw, layer, expert, int(p), out, res)
	}); err != nil {
		return nil, err
	}
	return out, nil
}
