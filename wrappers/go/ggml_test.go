package ktq_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	ktq "github.com/ktq/ktq/wrappers/go"
)

// ggmlGolden is tests/golden/ggml_blocks.json / ggml_kquants.json, made by
// gguf-py and ggml's own reference quantizers.
type ggmlGolden struct {
	InputF32 string `json:"input_f32"`
	Types    map[string]struct {
		ID             int    `json:"id"`
		Quantized      string `json:"quantized"`
		DequantizedF32 string `json:"dequantized_f32"`
	} `json:"types"`
}

func decodeF32(t *testing.T, b64 string) []float32 {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b)%4 != 0 {
		t.Fatalf("bad float32 base64 (%d bytes, %v)", len(b), err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func TestGGMLBlocksMatchGGML(t *testing.T) {
	checked := 0
	for _, file := range []string{"ggml_blocks.json", "ggml_kquants.json"} {
		var g ggmlGolden
		golden(t, file, &g)
		input := decodeF32(t, g.InputF32)
		if len(g.Types) == 0 || len(input) == 0 {
			t.Fatalf("%s: nothing to check", file)
		}
		for name, want := range g.Types {
			typ := ktq.GGMLType(want.ID)
			if typ.String() != name {
				t.Fatalf("type %d is %q, the golden file says %q", want.ID, typ.String(), name)
			}
			quantized, err := base64.StdEncoding.DecodeString(want.Quantized)
			if err != nil {
				t.Fatal(err)
			}
			blocks := len(input) / typ.BlockSize()
			if blocks*typ.BlockSize() != len(input) || blocks*typ.TypeSize() != len(quantized) {
				t.Fatalf("%s: block %d, %d bytes/block, %d values, %d golden bytes", name, typ.BlockSize(),
					typ.TypeSize(), len(input), len(quantized))
			}
			got, err := ktq.QuantizeBlocks(typ, input)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !bytes.Equal(got, quantized) {
				i := 0
				for i < len(got) && got[i] == quantized[i] {
					i++
				}
				t.Fatalf("%s: quantized bytes differ from %s at byte %d", name, file, i)
			}
			back, err := ktq.DequantizeBlocks(typ, quantized, len(input))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if want.DequantizedF32 == "" {
				t.Fatalf("%s: no dequantized_f32 in %s", name, file)
			}
			if i := firstDiff(back, decodeF32(t, want.DequantizedF32)); i >= 0 {
				t.Fatalf("%s: dequantized value %d differs from %s", name, i, file)
			}
			checked++
		}
	}
	if checked < 13 {
		t.Fatalf("only %d types checked", checked)
	}
}

func TestGGMLBlocksReject(t *testing.T) {
	var kerr *ktq.Error
	if _, err := ktq.QuantizeBlocks(ktq.GGMLQ4K, make([]float32, 300)); !errors.As(err, &kerr) ||
		kerr.Status != ktq.StatusInvalidArgument {
		t.Fatalf("300 values of Q4_K: want an invalid argument error, got %v", err)
	}
	if _, err := ktq.DequantizeBlocks(ktq.GGMLQ8_0, make([]byte, 34), 33); !errors.As(err, &kerr) {
		t.Fatalf("33 values of Q8_0: want an *Error, got %v", err)
	}
	if _, err := ktq.DequantizeBlocks(ktq.GGMLQ8_0, make([]byte, 33), 32); !errors.As(err, &kerr) {
		t.Fatalf("33 bytes for one Q8_0 block: want an *Error, got %v", err)
	}
	if _, err := ktq.DequantizeBlocks(ktq.GGMLQ8_0, nil, -32); !errors.As(err, &kerr) {
		t.Fatalf("-32 values: want an *Error, got %v", err)
	}
	if _, err := ktq.QuantizeBlocks(ktq.GGMLType(99), make([]float32, 32)); !errors.As(err, &kerr) {
		t.Fatalf("type 99: want an *Error, got %v", err)
	}
	if s := ktq.GGMLType(99).String(); s != "GGMLType(99)" {
		t.Fatalf("type 99 is %q", s)
	}
	if ktq.GGMLQ8_0.BlockSize() != 32 || ktq.GGMLQ8_0.TypeSize() != 34 || ktq.GGMLQ6K.BlockSize() != 256 ||
		ktq.GGMLBF16.String() != "BF16" {
		t.Fatal("unexpected Q8_0 / Q6_K / BF16 block description")
	}
}

// QuantizeRows against ggml's importance-weighted quantizers (tests/golden/ggml_importance.json, made by
// llama.cpp's ggml-quants.c with quant_weights).
func TestQuantizeRowsMatchesGGMLsImportancePath(t *testing.T) {
	var g struct {
		NPerRow    int    `json:"n_per_row"`
		Rows       int    `json:"rows"`
		InputF32   string `json:"input_f32"`
		Importance string `json:"importance_f32"`
		Types      map[string]struct {
			ID        int    `json:"id"`
			Quantized string `json:"quantized"`
		} `json:"types"`
	}
	golden(t, "ggml_importance.json", &g)
	input, importance := decodeF32(t, g.InputF32), decodeF32(t, g.Importance)
	if len(g.Types) == 0 || len(input) != g.Rows*g.NPerRow || len(importance) != len(input) {
		t.Fatalf("nothing to check (%d types, %d importance values)", len(g.Types), len(importance))
	}
	for name, want := range g.Types {
		typ := ktq.GGMLType(want.ID)
		quantized, err := base64.StdEncoding.DecodeString(want.Quantized)
		if err != nil {
			t.Fatal(err)
		}
		// Each golden row has its own importance vector: one call per row.
		var got []byte
		for r := 0; r < g.Rows; r++ {
			row := input[r*g.NPerRow : (r+1)*g.NPerRow]
			q, err := ktq.QuantizeRows(typ, row, g.NPerRow, importance[r*g.NPerRow:(r+1)*g.NPerRow])
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = append(got, q...)
		}
		if !bytes.Equal(got, quantized) {
			t.Fatalf("%s: differs from ggml's importance-weighted bytes", name)
		}
	}
	var kerr *ktq.Error
	if _, err := ktq.QuantizeRows(ktq.GGMLQ4K, input, g.NPerRow, importance[1:g.NPerRow]); !errors.As(err, &kerr) ||
		kerr.Status != ktq.StatusInvalidArgument {
		t.Fatalf("short importance: want an invalid-argument error, got %v", err)
	}
	if _, err := ktq.QuantizeRows(ktq.GGMLQ4K, input[:len(input)-1], g.NPerRow, importance[:g.NPerRow]); err == nil {
		t.Fatal("a partial row was accepted")
	}
	// Two rows of 128 are one Q4_K super-block in all, but each row is quantized on its own.
	if _, err := ktq.QuantizeRows(ktq.GGMLQ4K, input[:256], 128, importance[:128]); !errors.As(err, &kerr) ||
		kerr.Status != ktq.StatusInvalidArgument || !strings.Contains(kerr.Message, "not whole Q4_K blocks") {
		t.Fatalf("rows of 128 for Q4_K: want an invalid-argument error, got %v", err)
	}
}
