package ktq_test

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// sharedModel is the path of a model of the shared test set
// ($KTQ_SHARED/models/NAME, by default ../shared next to the checkout);
// the test is skipped when it is absent.
func sharedModel(t *testing.T, name string) string {
	t.Helper()
	shared := os.Getenv("KTQ_SHARED")
	if shared == "" {
		shared = filepath.Join("..", "..", "..", "shared")
	}
	p := filepath.Join(shared, "models", name)
	if _, err := os.Stat(filepath.Join(p, "config.json")); err != nil {
		t.Skipf("shared model %s not found (%v)", name, err)
	}
	return p
}

// golden reads tests/golden/NAME of the checkout into v.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "tests", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// safetensorsBF16 decodes tensor `name` of a .safetensors file on its own
// (8-byte little-endian header length, JSON header, raw data): its shape
// and its BF16 values widened to float32.
func safetensorsBF16(t *testing.T, file, name string) ([]int64, []float32) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 8 {
		t.Fatalf("%s: too short", file)
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		t.Fatalf("%s: header length %d", file, n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	raw, ok := header[name]
	if !ok {
		t.Fatalf("%s: no tensor %s", file, name)
	}
	var info struct {
		Dtype       string   `json:"dtype"`
		Shape       []int64  `json:"shape"`
		DataOffsets [2]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	if info.Dtype != "BF16" {
		t.Fatalf("%s is %s, not BF16", name, info.Dtype)
	}
	data := b[8+n:][info.DataOffsets[0]:info.DataOffsets[1]]
	out := make([]float32, len(data)/2)
	for i := range out {
		out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(data[2*i:])) << 16)
	}
	return info.Shape, out
}

// firstDiff reports the first index where a and b differ bit for bit (-1 if none).
func firstDiff(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}
