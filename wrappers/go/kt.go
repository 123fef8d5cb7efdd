package ktq

import (
	"sync"

	"github.com/ktq/ktq/wrappers/go/internal/ktqswig"
)

// KtOutput is a kt-kernel AMX expert output read back: a folder that ktq
// (FormatKtInt4 / FormatKtInt8) or kt-kernel's convert_cpu_weights.py wrote,
// merged safetensors or loose .kt files. It is immutable once open and may
// be used from several goroutines at once; Close must not race with other
// calls.
type KtOutput struct {
	mu     sync.RWMutex
	raw    ktqswig.Struct_SS_ktq_kt_output
	merged bool
}

// KtPart describes one NUMA part of one expert matrix in a KtOutput. The
// packed matrix is [Rows, Cols] (Rows = output features): for gate and up
// the part holds rows [Part*Rows, (Part+1)*Rows) of the expert's matrix,
// for down the columns [Part*Cols, (Part+1)*Cols) of every row.
type KtPart struct {
	Name   string // "blk.L.ffn_gate_exps.E.numa.P"
	Layer  int
	Expert int
	Proj   Proj
	Part   int // NUMA part
	Bits   int // 4 (AMXINT4) or 8 (AMXINT8)
	Rows   int
	Cols   int
	// PackedBytes is the size of the packed weights; there are Rows float32
	// scales besides.
	PackedBytes int
}

// OpenKtOutput opens dir: merged when it holds *.safetensors, else loose.
// A folder without kt expert weights is an *Error of StatusNotFound;
// inconsistent ones are StatusFormat errors naming the file and tensor.
func OpenKtOutput(dir string) (*KtOutput, error) {
	var raw ktqswig.Struct_SS_ktq_kt_output
	if err := call(func(res ktqswig.Ktqs_result) { raw = ktqswig.Ktqs_kt_open(dir, res) }); err != nil {
		return nil, err
	}
	return &KtOutput{raw: raw, merged: ktqswig.Ktqs_kt_is_merged(raw) != 0}, nil
}

// Close releases the output. Closing twice is harmless.
func (o *KtOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.raw != nil {
		ktqswig.Ktqs_kt_free(o.raw)
		o.raw = nil
	}
	return nil
}

// Merged reports whether the output is in the merged safetensors layout
// (false: loose _layer_L/_numa_P/*.kt files). It stays valid after Close.
func (o *KtOutput) Merged() bool { return o.merged }

// Parts lists the expert parts, ordered by layer, projection, expert and
// NUMA part; their indices are the i of Read and Dequantize.
func (o *KtOutput) Parts() ([]KtPart, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.raw == nil {
		return nil, ErrClosed
	}
	n := ktqswig.Ktqs_kt_part_count(o.raw)
	parts := make([]KtPart, 0, n)
	for i := int64(0); i < n; i++ {
		p, err := o.part(i)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// part describes part i; call it with o.mu held.
func (o *KtOutput) part(i int64) (KtPart, error) {
	var p KtPart
	err := call(func(res ktqswig.Ktqs_result) {
		num := func(f string) int {
			if res.GetStatus() != 0 {
				return 0
			}
			return int(ktqswig.Ktqs_kt_part_num(o.raw, i, f, res))
		}
		p.Name = ktqswig.Ktqs_kt_part_name(o.raw, i, res)
		p.Layer, p.Expert, p.Proj, p.Part = num("layer"), num("expert"), Proj(num("proj")), num("part")
		p.Bits, p.Rows, p.Cols, p.PackedBytes = num("bits"), num("rows"), num("cols"), num("packed_bytes")
	})
	if err != nil {
		return KtPart{}, err
	}
	return p, nil
}

// Read returns part i's packed weight bytes (kt-kernel's AMX layout, see
// docs/formats/kt-kernel.md) and its Rows float32 scales, one per row.
func (o *KtOutput) Read(i int) (packed []byte, scales []float32, err error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.raw == nil {
		return nil, nil, ErrClosed
	}
	p, err := o.part(int64(i))
	if err != nil {
		return nil, nil, err
	}
	packed, scales = make([]byte, p.PackedBytes), make([]float32, p.Rows)
	if err := call(func(res ktqswig.Ktqs_result) { ktqswig.Ktqs_kt_read(o.raw, int64(i), packed, scales, res) }); err != nil {
		return nil, nil, err
	}
	return packed, scales, nil
}

// Dequantize returns part i's Rows x Cols weights (code x row scale),
// row-major.
func (o *KtOutput) Dequantize(i int) ([]float32, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.raw == nil {
		return nil, ErrClosed
	}
	p, err := o.part(int64(i))
	if err != nil {
		return nil, err
	}
	n, err := length(int64(p.Rows)*int64(p.Cols), 4, p.Name)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	if err := call(func(res ktqswig.Ktqs_result) { ktqswig.Ktqs_kt_dequantize(o.raw, int64(i), out, res) }); err != nil {
		return nil, err
	}
	return out, nil
}

// MergeKt writes the loose kt output in looseDir (ConvertOptions.LooseFiles,
// or kt-kernel's --no-merge-safetensor) as merged safetensors into outDir,
// one shard per MoE layer, as kt-kernel's merge_cpu_weights.py does. With m
// (the checkpoint it was converted from; may be nil) the other tensors,
// config.json and the tokenizer files are added too, which gives exactly the
// files of a merged conversion. overwrite allows a non-empty outDir. Nothing
// has a final name in outDir until all is written.
func MergeKt(outDir, looseDir string, m *Model, overwrite bool) error {
	var raw ktqswig.Struct_SS_ktq_model
	if m != nil {
		m.mu.RLock()
		defer m.mu.RUnlock()
		if m.raw == nil {
			return ErrClosed
		}
		raw = m.raw
	}
	return call(func(res ktqswig.Ktqs_result) { ktqswig.Ktqs_kt_merge(outDir, looseDir, raw, b2i(overwrite), res) })
}
