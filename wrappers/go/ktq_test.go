package ktq_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	ktq "github.com/ktq/ktq/wrappers/go"
)

var demo = filepath.Join("..", "..", "examples", "models", "tiny-deepseek-v3-fp8")

func TestDescribesTheDemoModel(t *testing.T) {
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Architecture != "DeepseekV3ForCausalLM" || info.Family != "deepseek_v3" || info.NumLayers != 3 ||
		info.NumExperts != 16 || info.ExpertsPerToken != 4 || info.FirstDenseLayers != 1 ||
		info.NumSharedExperts != 1 || info.SourceDtype != "F8_E4M3" || info.NumTensors != 256 {
		t.Fatalf("unexpected info %+v", info)
	}
}

func files(t *testing.T, dir string) map[string][]byte {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func TestConvertMatchesTheCLI(t *testing.T) {
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := filepath.Join(t.TempDir(), "go")
	var last ktq.Progress
	err = ktq.Convert(context.Background(), m, out, ktq.ConvertOptions{Threads: 2,
		Progress: func(p ktq.Progress) { last = p }, ProgressEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if last.BytesTotal == 0 || last.BytesDone != last.BytesTotal {
		t.Fatalf("final progress %+v", last)
	}
	got := files(t, out)
	if _, ok := got["model.safetensors"]; !ok {
		t.Fatalf("no model.safetensors in %v", got)
	}
	if bin := os.Getenv("KTQ_BIN"); bin != "" {
		cli := filepath.Join(t.TempDir(), "cli")
		if b, err := exec.Command(bin, "convert", demo, cli, "--quiet").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		want := files(t, cli)
		var names []string
		for n := range want {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if !bytes.Equal(want[n], got[n]) {
				t.Fatalf("%s differs from the CLI's output", n)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d files, CLI wrote %d", len(got), len(want))
		}
	}
}

func TestCancelledContextLeavesNothing(t *testing.T) {
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(t.TempDir(), "out")
	err = ktq.Convert(ctx, m, out, ktq.ConvertOptions{})
	var ke *ktq.Error
	if !errors.As(err, &ke) || ke.Status != ktq.StatusCancelled {
		t.Fatalf("want a cancelled error, got %v", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Fatalf("left %v", entries)
	}
}

func TestCancelDuringConversion(t *testing.T) {
	// A context cancelled while C runs: the run stops with StatusCancelled
	// (or, on a fast machine, finishes first) and never leaves a half output.
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i)*2*time.Millisecond)
		out := filepath.Join(t.TempDir(), "out")
		err := ktq.Convert(ctx, m, out, ktq.ConvertOptions{Threads: 1})
		cancel()
		var ke *ktq.Error
		if err != nil && !(errors.As(err, &ke) && ke.Status == ktq.StatusCancelled) {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(out)
		if err != nil && len(entries) != 0 {
			t.Fatalf("cancelled run left %v", entries)
		}
	}
}

func TestBadPathAndClosedModel(t *testing.T) {
	_, err := ktq.Open("/nonexistent/ktq-model")
	var ke *ktq.Error
	if !errors.As(err, &ke) || ke.Status != ktq.StatusNotFound || !strings.Contains(ke.Message, "/nonexistent/ktq-model") {
		t.Fatalf("want not found naming the path, got %v", err)
	}
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	m.Close()
	if _, err := m.Info(); !errors.Is(err, ktq.ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
	if err := ktq.Convert(context.Background(), m, t.TempDir(), ktq.ConvertOptions{}); !errors.Is(err, ktq.ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
}

func TestOneModelManyGoroutines(t *testing.T) {
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if info, err := m.Info(); err != nil || info.NumExperts != 16 {
					t.Errorf("info %+v, %v", info, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if v := ktq.Version(); v == "" {
		t.Fatal("empty version")
	}
}

func TestKtFormatMatchesTheCLI(t *testing.T) {
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := filepath.Join(t.TempDir(), "go-kt")
	opts := ktq.ConvertOptions{Format: ktq.FormatKtInt4, NumaParts: 2, Threads: 2}
	if err := ktq.Convert(context.Background(), m, out, opts); err != nil {
		t.Fatal(err)
	}
	got := files(t, out)
	if len(got) == 0 {
		t.Fatal("no output")
	}
	if bin := os.Getenv("KTQ_BIN"); bin != "" {
		cli := filepath.Join(t.TempDir(), "cli-kt")
		cmd := exec.Command(bin, "convert", demo, cli, "--format", "kt", "--quant-method", "int4", "--quiet")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		want := files(t, cli)
		for n, w := range want {
			if !bytes.Equal(w, got[n]) {
				t.Fatalf("%s differs from the CLI's output", n)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d files, CLI wrote %d", len(got), len(want))
		}
	}
}

func TestCompressedTensorsMatchesTheCLI(t *testing.T) {
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := filepath.Join(t.TempDir(), "go-ct")
	opts := ktq.ConvertOptions{Format: ktq.FormatCompressedTensors, Scheme: ktq.Scheme{Bits: 4, GroupSize: 64, MseObserver: true},
		Ignore: []string{}, Threads: 2} // nothing ignored: attention and lm_head quantized too
	if err := ktq.Convert(context.Background(), m, out, opts); err != nil {
		t.Fatal(err)
	}
	got := files(t, out)
	if !bytes.Contains(got["config.json"], []byte(`"ignore": []`)) ||
		!bytes.Contains(got["config.json"], []byte(`"observer": "memoryless_mse"`)) {
		t.Fatalf("config.json should ignore nothing and name the MSE observer:\n%s", got["config.json"])
	}
	if bin := os.Getenv("KTQ_BIN"); bin != "" {
		cli := filepath.Join(t.TempDir(), "cli-ct")
		cmd := exec.Command(bin, "convert", demo, cli, "--to", "compressed-tensors", "--group-size", "64",
			"--no-default-ignore", "--observer", "mse", "--quiet")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		want := files(t, cli)
		for n, w := range want {
			if !bytes.Equal(w, got[n]) {
				t.Fatalf("%s differs from the CLI's output", n)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d files, CLI wrote %d", len(got), len(want))
		}
	}
	bad := ktq.ConvertOptions{Format: ktq.FormatCompressedTensors, Scheme: ktq.Scheme{GroupSize: 100}}
	err = ktq.Convert(context.Background(), m, filepath.Join(t.TempDir(), "bad"), bad)
	var kerr *ktq.Error
	if !errors.As(err, &kerr) || kerr.Status != ktq.StatusFormat || !strings.Contains(kerr.Message, "group size 100") {
		t.Fatalf("want a format error naming the group size, got %v", err)
	}
}

func TestGGUFMatchesTheCLI(t *testing.T) {
	llama := filepath.Join("..", "..", "..", "shared", "models", "tiny-llama")
	if _, err := os.Stat(llama); err != nil {
		t.Skip("shared tiny-llama not found")
	}
	m, err := ktq.Open(llama)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := filepath.Join(t.TempDir(), "go.gguf")
	if err := ktq.Convert(context.Background(), m, out, ktq.ConvertOptions{Format: ktq.FormatGGUF, GGMLType: ktq.GGMLQ6K}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(got, []byte("GGUF")) {
		t.Fatalf("no GGUF file: %v", err)
	}
	if bin := os.Getenv("KTQ_BIN"); bin != "" {
		cli := filepath.Join(t.TempDir(), "cli.gguf")
		if b, err := exec.Command(bin, "convert", llama, cli, "--to", "gguf", "--type", "Q6_K", "--quiet").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		want, _ := os.ReadFile(cli)
		if !bytes.Equal(got, want) {
			t.Fatal("the GGUF file differs from the CLI's")
		}
	}
	// A llama-quantize mixture by name.
	mixed := filepath.Join(t.TempDir(), "mix.gguf")
	if err := ktq.Convert(context.Background(), m, mixed, ktq.ConvertOptions{Format: ktq.FormatGGUF, GGUFMix: "Q4_K_M"}); err != nil {
		t.Fatal(err)
	}
	if bin := os.Getenv("KTQ_BIN"); bin != "" {
		cli := filepath.Join(t.TempDir(), "cli-mix.gguf")
		if b, err := exec.Command(bin, "convert", llama, cli, "--to", "gguf", "--type", "Q4_K_M", "--quiet").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		got, _ := os.ReadFile(mixed)
		want, _ := os.ReadFile(cli)
		if !bytes.Equal(got, want) {
			t.Fatal("the Q4_K_M file differs from the CLI's")
		}
	}
	err = ktq.Convert(context.Background(), m, filepath.Join(t.TempDir(), "bad.gguf"),
		ktq.ConvertOptions{Format: ktq.FormatGGUF, GGUFMix: "Q9_K_X"})
	if err == nil || !strings.Contains(err.Error(), "Q9_K_X") {
		t.Fatalf("an unknown mixture: %v", err)
	}
	// Read back over the checkpoint: BF16 holds it exactly, so Q/K rows must come back un-permuted.
	bf16 := filepath.Join(t.TempDir(), "bf16.gguf")
	if err := ktq.Convert(context.Background(), m, bf16, ktq.ConvertOptions{Format: ktq.FormatGGUF, GGMLType: ktq.GGMLBF16}); err != nil {
		t.Fatal(err)
	}
	over, err := ktq.OpenWith(llama, ktq.OpenOptions{GGUFWeights: bf16})
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	for _, name := range []string{"model.layers.0.self_attn.q_proj.weight", "model.layers.2.self_attn.k_proj.weight"} {
		a, err1 := over.ReadTensor(name)
		b, err2 := m.ReadTensor(name)
		if err1 != nil || err2 != nil || len(a) != len(b) {
			t.Fatalf("%s: %v %v", name, err1, err2)
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s[%d]: %v over GGUF, %v in the checkpoint", name, i, a[i], b[i])
			}
		}
	}
	if _, err := ktq.OpenWith(llama, ktq.OpenOptions{GGUFWeights: "/nonexistent.gguf"}); err == nil ||
		!strings.Contains(err.Error(), "/nonexistent.gguf") {
		t.Fatalf("a missing GGUF file: %v", err)
	}
}

// The GGUF writer options of ktq_writer_options v5 (importance matrix, routing statistics, pre-tokenizer
// name, source digests) give the CLI's bytes for the same flags.
func TestGGUFOptionsMatchTheCLI(t *testing.T) {
	shared := filepath.Join("..", "..", "..", "shared", "models")
	qwen := filepath.Join(shared, "tiny-qwen3-moe")
	if _, err := os.Stat(qwen); err != nil {
		t.Skip("shared tiny-qwen3-moe not found")
	}
	imatrix, err := filepath.Abs(filepath.Join("..", "..", "tests", "golden", "imatrix", "tiny-qwen3-moe.imatrix.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	stats := filepath.Join(t.TempDir(), "routing_stats.json")
	if err := os.WriteFile(stats, []byte(`{"layers": {"0": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ktq.Open(qwen)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cases := []struct {
		name  string
		opts  ktq.ConvertOptions
		flags []string
	}{
		{"imatrix", ktq.ConvertOptions{GGUFImatrix: imatrix, GGUFSourceSHA256: true},
			[]string{"--imatrix", imatrix, "--source-sha256"}},
		{"pre", ktq.ConvertOptions{GGUFTokenizerPre: "qwen2", GGUFRoutingStats: stats},
			[]string{"--tokenizer-pre", "qwen2", "--routing-stats", stats}},
	}
	for _, c := range cases {
		out := filepath.Join(t.TempDir(), c.name+".gguf")
		opts := c.opts
		opts.Format, opts.GGMLType, opts.Threads = ktq.FormatGGUF, ktq.GGMLQ4K, 2
		if err := ktq.Convert(context.Background(), m, out, opts); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, _ := os.ReadFile(out)
		for _, key := range map[string][]string{"imatrix": {"quantize.imatrix.file", "ktq.source.sha256"},
			"pre": {"qwen2", "ktq.routing.blk.0.expert_tokens"}}[c.name] {
			if !bytes.Contains(got, []byte(key)) {
				t.Fatalf("%s: %q not in the file", c.name, key)
			}
		}
		if bin := os.Getenv("KTQ_BIN"); bin != "" {
			cli := filepath.Join(t.TempDir(), c.name+"-cli.gguf")
			args := append([]string{"convert", qwen, cli, "--to", "gguf", "--type", "Q4_K", "--threads", "2", "--quiet"}, c.flags...)
			if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			want, _ := os.ReadFile(cli)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: the GGUF file differs from the CLI's", c.name)
			}
		}
	}
	bad := ktq.ConvertOptions{Format: ktq.FormatGGUF, GGMLType: ktq.GGMLQ4K, GGUFImatrix: "/nonexistent.imatrix"}
	if err := ktq.Convert(context.Background(), m, filepath.Join(t.TempDir(), "bad.gguf"), bad); err == nil ||
		!strings.Contains(err.Error(), "/nonexistent.imatrix") {
		t.Fatalf("a missing imatrix: %v", err)
	}
}

// calibText writes a calibration text (the README, several times) and returns its path.
func calibText(t *testing.T) string {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "calib.txt")
	if err := os.WriteFile(p, bytes.Repeat(readme, 4), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPerplexityMatchesTheCLI(t *testing.T) {
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	text := calibText(t)
	ppl, err := m.Perplexity(text, 128, 512)
	if err != nil || ppl <= 1 || ppl > 4096 {
		t.Fatalf("ppl %v, err %v", ppl, err)
	}
	if bin := os.Getenv("KTQ_BIN"); bin != "" {
		out, err := exec.Command(bin, "eval-ppl", demo, "--text", text, "--window", "128", "--max-tokens", "512",
			"--json", "-q").Output()
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Perplexity float64 }
		if err := json.Unmarshal(out, &r); err != nil || r.Perplexity != ppl {
			t.Fatalf("CLI says %v (%v), Go %v", r.Perplexity, err, ppl)
		}
	}
	var kerr *ktq.Error
	if _, err := m.Perplexity(filepath.Join(t.TempDir(), "missing.txt"), 128, 0); !errors.As(err, &kerr) ||
		!strings.Contains(kerr.Message, "missing.txt") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}

func TestGPTQMatchesTheCLI(t *testing.T) {
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	text := calibText(t)
	out := filepath.Join(t.TempDir(), "go-gptq")
	opts := ktq.ConvertOptions{Format: ktq.FormatCompressedTensors, Scheme: ktq.Scheme{Bits: 4},
		GPTQ: &ktq.GPTQOptions{Dataset: text, Samples: 4, SequenceLength: 128}, Threads: 2}
	if err := ktq.Convert(context.Background(), m, out, opts); err != nil {
		t.Fatal(err)
	}
	got := files(t, out)
	if _, ok := got["gptq_report.json"]; !ok {
		t.Fatal("no gptq_report.json")
	}
	if bin := os.Getenv("KTQ_BIN"); bin != "" {
		cli := filepath.Join(t.TempDir(), "cli-gptq")
		cmd := exec.Command(bin, "convert", demo, cli, "--to", "compressed-tensors", "--engine", "gptq", "--dataset",
			text, "--num-calibration-samples", "4", "--max-sequence-length", "128", "--quiet")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		for n, w := range files(t, cli) {
			if !bytes.Equal(w, got[n]) {
				t.Fatalf("%s differs from the CLI's output", n)
			}
		}
	}
	bad := opts
	bad.GPTQ = &ktq.GPTQOptions{Dataset: filepath.Join(t.TempDir(), "none.txt")}
	var kerr *ktq.Error
	if err := ktq.Convert(context.Background(), m, filepath.Join(t.TempDir(), "bad"), bad); !errors.As(err, &kerr) ||
		!strings.Contains(kerr.Message, "none.txt") {
		t.Fatalf("want an error naming the dataset, got %v", err)
	}
}

func TestAWQMatchesTheCLI(t *testing.T) {
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	text := calibText(t)
	for _, all := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "go-awq")
		opts := ktq.ConvertOptions{Format: ktq.FormatCompressedTensors, Scheme: ktq.Scheme{Bits: 4, Asymmetric: true},
			AWQ: &ktq.AWQOptions{Dataset: text, Samples: 4, SequenceLength: 128, MoEHessianAll: all}, Threads: 2}
		if err := ktq.Convert(context.Background(), m, out, opts); err != nil {
			t.Fatal(err)
		}
		got := files(t, out)
		report, ok := got["awq_report.json"]
		if !ok {
			t.Fatal("no awq_report.json")
		}
		if bytes.Contains(report, []byte("routed_rows")) == all {
			t.Fatalf("MoEHessianAll %v: routed_rows in the report is %v", all, !all)
		}
		if bin := os.Getenv("KTQ_BIN"); bin != "" {
			mode := "blend"
			if all {
				mode = "all"
			}
			cli := filepath.Join(t.TempDir(), "cli-awq")
			cmd := exec.Command(bin, "convert", demo, cli, "--to", "compressed-tensors", "--engine", "awq", "--dataset",
				text, "--num-calibration-samples", "4", "--max-sequence-length", "128", "--moe-hessian", mode, "--quiet")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			for n, w := range files(t, cli) {
				if !bytes.Equal(w, got[n]) {
					t.Fatalf("%s differs from the CLI's output", n)
				}
			}
		}
	}
	both := ktq.ConvertOptions{Format: ktq.FormatCompressedTensors, GPTQ: &ktq.GPTQOptions{Dataset: text},
		AWQ: &ktq.AWQOptions{Dataset: text}}
	var kerr *ktq.Error
	if err := ktq.Convert(context.Background(), m, filepath.Join(t.TempDir(), "both"), both); !errors.As(err, &kerr) ||
		kerr.Status != ktq.StatusInvalidArgument {
		t.Fatalf("want an invalid-argument error for GPTQ and AWQ together, got %v", err)
	}
}

// The calibrated engines honour MaxCPUMemory (a layer that needs more stops before anything of it is written)
// and GPTQ runs on ConvertOptions.Device (a CUDA request fails where there is no CUDA device).
func TestCalibrationMemoryLimitAndDevice(t *testing.T) {
	m, err := ktq.Open(demo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	text := calibText(t)
	for _, engine := range []string{"GPTQ", "AWQ"} {
		out := filepath.Join(t.TempDir(), "small")
		opts := ktq.ConvertOptions{Format: ktq.FormatCompressedTensors, Scheme: ktq.Scheme{Bits: 4}, Threads: 2}
		if engine == "GPTQ" {
			opts.GPTQ = &ktq.GPTQOptions{Dataset: text, Samples: 4, SequenceLength: 128, MaxCPUMemory: 1 << 20}
		} else {
			opts.AWQ = &ktq.AWQOptions{Dataset: text, Samples: 4, SequenceLength: 128, MaxCPUMemory: 1 << 20}
		}
		var kerr *ktq.Error
		err := ktq.Convert(context.Background(), m, out, opts)
		if !errors.As(err, &kerr) || kerr.Status != ktq.StatusNoMemory ||
			!strings.Contains(kerr.Message, engine+" needs about") || !strings.Contains(kerr.Message, "limit is 1 MiB") {
			t.Fatalf("%s under 1 MiB: want a no-memory error naming the limit, got %v", engine, err)
		}
		if !strings.Contains(kerr.Message, "host memory for layer 0") { // checked before layer 0 runs
			t.Fatalf("%s: want the check before layer 0, got %q", engine, kerr.Message)
		}
	}
	sys, err := ktq.SystemInfo()
	if err != nil {
		t.Fatal(err)
	}
	if sys.CUDADevices == 0 {
		opts := ktq.ConvertOptions{Format: ktq.FormatCompressedTensors, Scheme: ktq.Scheme{Bits: 4}, Device: ktq.DeviceCUDA,
			GPTQ: &ktq.GPTQOptions{Dataset: text, Samples: 4, SequenceLength: 128}}
		if err := ktq.Convert(context.Background(), m, filepath.Join(t.TempDir(), "cuda"), opts); err == nil ||
			!strings.Contains(err.Error(), "CUDA") {
			t.Fatalf("GPTQ on DeviceCUDA without a CUDA device: want an error naming CUDA, got %v", err)
		}
	}
}
