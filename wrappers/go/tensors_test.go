package ktq_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ktq "github.com/ktq/ktq/wrappers/go"
)

func TestTensorsMatchTheSafetensorsFile(t *testing.T) {
	dir := sharedModel(t, "tiny-qwen3-moe")
	m, err := ktq.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	tensors, err := m.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	if len(tensors) != info.NumTensors || len(tensors) == 0 {
		t.Fatalf("%d tensors, Info says %d", len(tensors), info.NumTensors)
	}
	byName := map[string]ktq.TensorInfo{}
	for i, ti := range tensors {
		if i > 0 && tensors[i-1].Name >= ti.Name {
			t.Fatalf("not in name order: %s before %s", tensors[i-1].Name, ti.Name)
		}
		byName[ti.Name] = ti
	}
	for _, name := range []string{"model.embed_tokens.weight", "model.layers.1.self_attn.q_proj.weight",
		"model.layers.0.mlp.experts.0.gate_proj.weight"} {
		ti, ok := byName[name]
		if !ok {
			t.Fatalf("Tensors() lacks %s", name)
		}
		shape, want := safetensorsBF16(t, filepath.Join(dir, ti.File), name)
		one, err := m.Tensor(name)
		if err != nil || !reflect.DeepEqual(one, ti) {
			t.Fatalf("Tensor(%s) = %+v, %v; Tensors() has %+v", name, one, err, ti)
		}
		if !reflect.DeepEqual(ti.Shape, shape) || ti.Dtype != "BF16" || ti.NBytes != uint64(2*len(want)) ||
			ti.Numel() != int64(len(want)) {
			t.Fatalf("%s: %+v, file says shape %v, %d BF16 values", name, ti, shape, len(want))
		}
		got, err := m.ReadTensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if i := firstDiff(got, want); i >= 0 {
			t.Fatalf("%s: %d values, file %d; element %d differs", name, len(got), len(want), i)
		}
	}
	if l := byName["model.layers.1.self_attn.q_proj.weight"].Layer; l != 1 {
		t.Fatalf("q_proj of layer 1 has layer %d", l)
	}
	if l := byName["model.embed_tokens.weight"].Layer; l != -1 {
		t.Fatalf("embed_tokens has layer %d", l)
	}

	gate := "model.layers.0.mlp.experts.0.gate_proj.weight"
	shape, want := safetensorsBF16(t, filepath.Join(dir, byName[gate].File), gate)
	rows, cols, err := m.ExpertShape(0, 0, ktq.ProjGate)
	if err != nil || int64(rows) != shape[0] || int64(cols) != shape[1] {
		t.Fatalf("ExpertShape = %d, %d, %v; file says %v", rows, cols, err, shape)
	}
	got, err := m.ReadExpert(0, 0, ktq.ProjGate)
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("ReadExpert(0, 0, gate): element %d differs from %s", i, gate)
	}
	down := "model.layers.2.mlp.experts.15.down_proj.weight"
	_, want = safetensorsBF16(t, filepath.Join(dir, byName[down].File), down)
	if got, err := m.ReadExpert(2, 15, ktq.ProjDown); err != nil || firstDiff(got, want) >= 0 {
		t.Fatalf("ReadExpert(2, 15, down) differs from %s (%v)", down, err)
	}

	var kerr *ktq.Error
	for _, f := range []func() error{
		func() error { _, err := m.ReadTensor("model.no.such.weight"); return err },
		func() error { _, err := m.Tensor("model.no.such.weight"); return err },
	} {
		if err := f(); !errors.As(err, &kerr) || !strings.Contains(kerr.Message, "model.no.such.weight") {
			t.Fatalf("want an *Error naming the tensor, got %v", err)
		}
	}
	if _, err := m.ReadExpert(0, 99, ktq.ProjUp); !errors.As(err, &kerr) {
		t.Fatalf("expert 99: want an *Error, got %v", err)
	}
	m.Close()
	if _, err := m.Tensors(); !errors.Is(err, ktq.ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
	if _, err := m.ReadExpert(0, 0, ktq.ProjGate); !errors.Is(err, ktq.ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
}

func TestProjString(t *testing.T) {
	if s := ktq.ProjGate.String() + ktq.ProjUp.String() + ktq.ProjDown.String() + ktq.Proj(7).String(); s != "gateupdownProj(7)" {
		t.Fatal(s)
	}
}
