package ktq_test

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ktq "github.com/ktq/ktq/wrappers/go"
)

// allFiles maps every file below dir (relative path) to its bytes.
func allFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestKtOutputReadBackAndMerge(t *testing.T) {
	bin := os.Getenv("KTQ_BIN")
	if bin == "" {
		t.Skip("KTQ_BIN (the ktq CLI) not set")
	}
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
	const numaParts = 2 // the CLI's default --threadpool-count
	merged := filepath.Join(t.TempDir(), "merged")
	loose := filepath.Join(t.TempDir(), "loose")
	for _, c := range []struct {
		out   string
		extra []string
	}{{merged, nil}, {loose, []string{"--no-merge-safetensor"}}} {
		args := append([]string{"convert", dir, c.out, "--format", "kt", "--quant-method", "int8", "--quiet"}, c.extra...)
		if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("ktq %v: %v: %s", args, err, b)
		}
	}

	o, err := ktq.OpenKtOutput(merged)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if !o.Merged() {
		t.Fatal("the merged output is not Merged()")
	}
	parts, err := o.Parts()
	if err != nil {
		t.Fatal(err)
	}
	if want := info.NumMoeLayers * info.NumExperts * 3 * numaParts; len(parts) != want {
		t.Fatalf("%d parts, want %d", len(parts), want)
	}
	// The gate parts of layer 0's expert 0 hold consecutive row ranges of
	// the checkpoint's matrix; each value is within half a step of it.
	w, err := m.ReadExpert(0, 0, ktq.ProjGate)
	if err != nil {
		t.Fatal(err)
	}
	rows, cols, _ := m.ExpertShape(0, 0, ktq.ProjGate)
	seen := 0
	for i, p := range parts {
		if p.Layer != 0 || p.Expert != 0 || p.Proj != ktq.ProjGate {
			continue
		}
		seen++
		if p.Bits != 8 || p.Cols != cols || p.Rows != rows/numaParts || p.PackedBytes != p.Rows*p.Cols ||
			!strings.HasPrefix(p.Name, "blk.0.ffn_gate_exps.0.numa.") {
			t.Fatalf("part %d: %+v", i, p)
		}
		packed, scales, err := o.Read(i)
		if err != nil || len(packed) != p.PackedBytes || len(scales) != p.Rows {
			t.Fatalf("Read(%d): %d bytes, %d scales, %v", i, len(packed), len(scales), err)
		}
		dq, err := o.Dequantize(i)
		if err != nil || len(dq) != p.Rows*p.Cols {
			t.Fatalf("Dequantize(%d): %d values, %v", i, len(dq), err)
		}
		for r := 0; r < p.Rows; r++ {
			row := w[(p.Part*p.Rows+r)*cols:][:cols]
			var amax float64
			for _, x := range row {
				amax = math.Max(amax, math.Abs(float64(x)))
			}
			s := float64(scales[r])
			if math.Abs(s-amax/127) > 1e-6*amax {
				t.Fatalf("part %d row %d: scale %v, amax/127 = %v", i, r, s, amax/127)
			}
			for c, x := range row {
				// Half a step, plus float32 rounding of x / scale and of code * scale.
				if d := math.Abs(float64(x) - float64(dq[r*cols+c])); d > s*(0.5+1e-4) {
					t.Fatalf("part %d [%d, %d]: weight %v, dequantized %v, scale %v", i, r, c, x, dq[r*cols+c], s)
				}
			}
		}
	}
	if seen != numaParts {
		t.Fatalf("%d gate parts of layer 0 expert 0", seen)
	}
	if _, _, err := o.Read(len(parts)); err == nil {
		t.Fatal("Read past the last part succeeded")
	}

	lo, err := ktq.OpenKtOutput(loose)
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	if lo.Merged() {
		t.Fatal("the loose output is Merged()")
	}
	if lp, err := lo.Parts(); err != nil || len(lp) != len(parts) {
		t.Fatalf("loose: %d parts, %v", len(lp), err)
	}
	// The loose parts read the same as the merged ones.
	for _, i := range []int{0, len(parts) / 2, len(parts) - 1} {
		a, as, err1 := o.Read(i)
		b, bs, err2 := lo.Read(i)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) || firstDiff(as, bs) >= 0 {
			t.Fatalf("part %d differs between merged and loose (%v, %v)", i, err1, err2)
		}
	}

	out := filepath.Join(t.TempDir(), "merged-by-go")
	if err := ktq.MergeKt(out, loose, m, false); err != nil {
		t.Fatal(err)
	}
	// Every file but the conversion's resume journal (not written by a merge).
	want, got := allFiles(t, merged), allFiles(t, out)
	delete(want, ".ktq-journal.json")
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("MergeKt wrote %d files, the CLI %d", len(got), len(want))
	}
	for name, b := range want {
		if !bytes.Equal(got[name], b) {
			t.Fatalf("%s differs from the CLI's merged output", name)
		}
	}
	if err := ktq.MergeKt(out, loose, m, false); err == nil {
		t.Fatal("MergeKt into a non-empty folder without overwrite succeeded")
	}
	if err := ktq.MergeKt(out, loose, nil, true); err != nil {
		t.Fatalf("MergeKt without a model, overwriting: %v", err)
	}

	o.Close()
	o.Close()
	if _, err := o.Parts(); !errors.Is(err, ktq.ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
	if _, err := o.Dequantize(0); !errors.Is(err, ktq.ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
	m.Close()
	if err := ktq.MergeKt(t.TempDir(), loose, m, true); !errors.Is(err, ktq.ErrClosed) {
		t.Fatalf("MergeKt with a closed model: want ErrClosed, got %v", err)
	}
}

func TestOpenKtOutputBadPath(t *testing.T) {
	_, err := ktq.OpenKtOutput("/nonexistent/kt-out")
	var kerr *ktq.Error
	if !errors.As(err, &kerr) || !strings.Contains(kerr.Message, "/nonexistent/kt-out") {
		t.Fatalf("want an *Error naming the path, got %v", err)
	}
	if _, err := ktq.OpenKtOutput(t.TempDir()); !errors.As(err, &kerr) || kerr.Status != ktq.StatusNotFound {
		t.Fatalf("empty folder: want StatusNotFound, got %v", err)
	}
}
