// Package ktq is the Go API of libktq: open Hugging Face MoE checkpoints,
// describe them, read their tensors and experts, and convert them (BF16,
// kt-kernel AMX, compressed-tensors, GGUF). Besides: kt-kernel outputs read
// back and merged (KtOutput, MergeKt), the checkpoint's tokenizer
// (Tokenizer), ggml block codecs (QuantizeBlocks), GPTQ for a forward pass
// of the caller's own (GPTQ) and the machine's capabilities (SystemInfo).
//
//	m, err := ktq.Open("DeepSeek-V3")
//	if err != nil { return err }
//	defer m.Close()
//	err = ktq.Convert(ctx, m, "DeepSeek-V3-bf16", ktq.ConvertOptions{})
//
// A Model may be used from several goroutines at once (libktq's models are
// thread-safe for reading); Close must not race with other calls. Cancelling
// ctx cancels a running conversion cleanly: nothing with a final name is
// left in the output folder. Errors are *Error values carrying libktq's
// status and message (naming the file and tensor).
//
// The package builds against the installed libktq found by pkg-config
// (set PKG_CONFIG_PATH for a non-system prefix) and needs SWIG at build time.
package ktq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ktq/ktq/wrappers/go/internal/ktqswig"
)

// Status is a libktq status code.
type Status int

// The libktq status codes.
const (
	StatusOK              Status = 0
	StatusInvalidArgument Status = -1
	StatusIO              Status = -2
	StatusFormat          Status = -3
	StatusUnsupported     Status = -4
	StatusNotFound        Status = -5
	StatusNoMemory        Status = -6
	StatusCancelled       Status = -7
	StatusBufferTooSmall  Status = -8
	StatusVersion         Status = -9
	StatusNoSpace         Status = -10
	StatusState           Status = -11
	StatusInternal        Status = -12
)

// Error is a failed libktq call.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("ktq: %s (status %d)", e.Message, int(e.Status)) }

// ErrClosed is returned by the methods of a closed Model, KtOutput,
// Tokenizer or GPTQ.
var ErrClosed = errors.New("ktq: use of a closed handle")

// Version is the version of the libktq loaded at run time.
func Version() string { return ktqswig.Ktqs_version() }

// call runs one C call with its own result slot.
func call(f func(res ktqswig.Ktqs_result)) error {
	res := ktqswig.NewKtqs_result()
	defer ktqswig.DeleteKtqs_result(res)
	f(res)
	if s := res.GetStatus(); s != 0 {
		return &Error{Status: Status(s), Message: res.GetMessage()}
	}
	return nil
}

// Model is an opened checkpoint folder (memory-mapped, read-only).
type Model struct {
	mu   sync.RWMutex
	raw  ktqswig.Struct_SS_ktq_model
	path string // as opened: its folder holds tokenizer.json
}

// Open opens a Hugging Face checkpoint folder (or one .safetensors file in
// it) with one worker thread per core.
func Open(path string) (*Model, error) { return OpenThreads(path, 0) }

// OpenThreads is Open with an explicit number of worker threads (0 = cores).
func OpenThreads(path string, threads int) (*Model, error) {
	return OpenWith(path, OpenOptions{Threads: threads})
}

// OpenOptions configure OpenWith.
type OpenOptions struct {
	// Threads is the number of worker threads (0 = one per core).
	Threads int
	// KtExperts (a kt-kernel output folder of this checkpoint) and
	// GGUFWeights (a GGUF file of it), if set, are read in place of the
	// checkpoint's weights, dequantized: the routed experts of the first,
	// every weight of the second (llama's Q/K permutation undone). Perplexity
	// then scores what kt-kernel or llama.cpp compute with.
	KtExperts, GGUFWeights string
}

// OpenWith is Open with options.
func OpenWith(path string, opts OpenOptions) (*Model, error) {
	var raw ktqswig.Struct_SS_ktq_model
	if err := call(func(res ktqswig.Ktqs_result) {
		raw = ktqswig.Ktqs_open_model(path, opts.Threads, opts.KtExperts, opts.GGUFWeights, res)
	}); err != nil {
		return nil, err
	}
	return &Model{raw: raw, path: path}, nil
}

// Close releases the model. Closing twice is harmless.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.raw != nil {
		ktqswig.Ktqs_model_free(m.raw)
		m.raw = nil
	}
	return nil
}

// Info describes a model.
type Info struct {
	Architecture, ModelType, Family, SourceDtype, Notice string
	NumLayers, HiddenSize, NumExperts, ExpertsPerToken   int
	MoeIntermediateSize, FirstDenseLayers, NumMoeLayers  int
	NumSharedExperts, NumTensors                         int
	TotalBytes                                           uint64
}

// Info returns what the model is.
func (m *Model) Info() (Info, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.raw == nil {
		return Info{}, ErrClosed
	}
	var info Info
	err := call(func(res ktqswig.Ktqs_result) {
		text := func(f string) string {
			if res.GetStatus() != 0 {
				return ""
			}
			return ktqswig.Ktqs_model_text(m.raw, f, res)
		}
		num := func(f string) int64 {
			if res.GetStatus() != 0 {
				return 0
			}
			return ktqswig.Ktqs_model_info(m.raw, f, res)
		}
		info = Info{
			Architecture: text("architecture"), ModelType: text("model_type"), Family: text("family"),
			SourceDtype: text("source_dtype"), Notice: text("notice"),
			NumLayers: int(num("num_layers")), HiddenSize: int(num("hidden_size")), NumExperts: int(num("num_experts")),
			ExpertsPerToken: int(num("experts_per_token")), MoeIntermediateSize: int(num("moe_intermediate_size")),
			FirstDenseLayers: int(num("first_dense_layers")), NumMoeLayers: int(num("num_moe_layers")),
			NumSharedExperts: int(num("num_shared_experts")), NumTensors: int(num("num_tensors")),
			TotalBytes: uint64(num("total_bytes")),
		}
	})
	return info, err
}

// Progress of a running conversion.
type Progress struct {
	Layer                 int // -1 for the non-layer tensors
	BytesDone, BytesTotal uint64
}

// Format is an output format of Convert.
type Format int

const (
	// FormatBF16 is a Hugging Face checkpoint with every floating tensor in BF16.
	FormatBF16 Format = 0
	// FormatKtInt4 and FormatKtInt8 are kt-kernel's AMX expert layouts
	// (convert_cpu_weights.py --quant-method int4 / int8).
	FormatKtInt4 Format = 2
	FormatKtInt8 Format = 3
	// FormatCompressedTensors is a compressed-tensors "pack-quantized"
	// checkpoint (W4A16 / W8A16 for vLLM, SGLang, transformers),
	// byte-identical to llm-compressor's RTN; see ConvertOptions.Scheme.
	FormatCompressedTensors Format = 4
	// FormatGGUF is one GGUF file (llama.cpp, Candle); Convert's outDir is
	// then the file's path. See ConvertOptions.GGMLType.
	FormatGGUF Format = 5
)

// GGMLType is a ggml block type (the numbers GGUF files store).
type GGMLType int

const (
	GGMLF32  GGMLType = 0
	GGMLF16  GGMLType = 1
	GGMLQ4_0 GGMLType = 2
	GGMLQ4_1 GGMLType = 3
	GGMLQ5_0 GGMLType = 6
	GGMLQ5_1 GGMLType = 7
	GGMLQ8_0 GGMLType = 8
	GGMLQ2K  GGMLType = 10
	GGMLQ3K  GGMLType = 11
	GGMLQ4K  GGMLType = 12
	GGMLQ5K  GGMLType = 13
	GGMLQ6K  GGMLType = 14
	GGMLBF16 GGMLType = 30
)

// Scheme is a compressed-tensors integer weight scheme. The zero value is
// W4A16: 4 bits, group 128, symmetric.
type Scheme struct {
	Bits       int // 4 (W4A16) or 8 (W8A16); 0 = 4
	GroupSize  int // weights per scale along a row; -1 = per output channel; 0 = 128
	Asymmetric bool
	// DtypeRounding gives the codes llm-compressor computes on a CPU (x /
	// scale rounded to BF16 first); the default gives those it computes on a
	// GPU (float32, compressed-tensors' Triton kernel).
	DtypeRounding bool
	// MseObserver chooses each group's scale with llm-compressor's "mse"
	// observer (the range shrunk by up to 19 % to the smallest |error|^2.4);
	// the default is its min-max observer. Slower, usually more accurate.
	MseObserver bool
}

// Device is where an engine computes.
type Device int

const (
	DeviceCPU  Device = 0
	DeviceCUDA Device = 1 // compressed-tensors only; same bytes as the CPU
)

// GPTQOptions select the GPTQ engine for FormatCompressedTensors: the
// weights are calibrated with ktq's own forward pass on Dataset (a local
// plain-text or JSONL file), tokenized with the model folder's tokenizer.
type GPTQOptions struct {
	Dataset string
	// Samples (0 = 512) of SequenceLength tokens (0 = 2048), drawn with Seed
	// (0 = 42, the library's and the CLI's default).
	Samples        int
	SequenceLength int
	Seed           uint64
	// DampeningFrac of the mean Hessian diagonal; 0 = 0.01 (llm-compressor's).
	DampeningFrac float64
	// ActOrderNone quantizes columns in natural order instead of static
	// activation order; MoEHessianAll weighs every token alike for routed
	// experts (llm-compressor's moe_calibrate_all_experts) instead of the
	// default blend of routed and all tokens.
	ActOrderNone  bool
	MoEHessianAll bool
	// MaxCPUMemory is the host memory calibration may hold, in bytes (0 = no
	// limit; the CLI's --max-cpu-memory): over half of it the activations
	// move to a temporary file, and a layer that needs more on its own fails
	// with StatusNoMemory before anything of it is written. The engine runs
	// on ConvertOptions.Device.
	MaxCPUMemory uint64
}

// AWQOptions select the AWQ engine for FormatCompressedTensors or
// FormatGGUF: calibrated like GPTQOptions, per-channel scales searched and
// folded into the model, then rounded to nearest, on ConvertOptions.Device.
// The scheme is ConvertOptions.Scheme, symmetric unless Asymmetric is set;
// AWQ's usual scheme (the CLI's default for --engine awq) is asymmetric.
type AWQOptions struct {
	Dataset        string
	Samples        int    // 0 = 512
	SequenceLength int    // 0 = 2048
	Seed           uint64 // 0 = 42
	// Grid is the number of scale exponents tried per mapping (0 = 20).
	Grid int
	// ActivationsOnly scales from activation magnitudes alone (AutoAWQ)
	// instead of llm-compressor's duo scaling; Clip adds AutoAWQ's clipping
	// search (compressed-tensors only); MoEHessianAll searches routed
	// experts' up -> down on every token alike instead of the default blend
	// of routed and all tokens.
	ActivationsOnly bool
	Clip            bool
	MoEHessianAll   bool
	// MaxCPUMemory as GPTQOptions'.
	MaxCPUMemory uint64
}

// Perplexity of the model on the UTF-8 text file textPath with ktq's native
// forward pass: the first maxTokens tokens (0 = all) as windows of window
// tokens (the shared protocol is 256 and 131072).
func (m *Model) Perplexity(textPath string, window int, maxTokens uint64) (float64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.raw == nil {
		return 0, ErrClosed
	}
	var ppl float64
	err := call(func(res ktqswig.Ktqs_result) {
		ppl = ktqswig.Ktqs_perplexity(m.raw, m.tokenizerPath(), textPath, window, maxTokens, res)
	})
	return ppl, err
}

func (m *Model) tokenizerPath() string {
	if st, err := os.Stat(m.path); err == nil && !st.IsDir() {
		return filepath.Join(filepath.Dir(m.path), "tokenizer.json")
	}
	return m.path
}

// ConvertOptions configure Convert. The zero value converts to BF16 with
// one thread per core into an empty (or new) folder.
type ConvertOptions struct {
	Format Format
	// NumaParts (kt formats) splits each expert into this many NUMA parts
	// (kt-kernel's --threadpool-count; 0 = 2). LooseFiles writes
	// _layer_L/_numa_P/*.kt files instead of merged safetensors.
	NumaParts  int
	LooseFiles bool
	// Scheme, Targets and Ignore apply to FormatCompressedTensors. Targets
	// and Ignore are compressed-tensors patterns ("Linear", module names,
	// "re:REGEX"); nil Targets = every Linear, nil Ignore = the defaults
	// (lm_head, routers, attention, shared experts, dense DeepSeek layers),
	// an empty non-nil Ignore = nothing ignored.
	Scheme  Scheme
	Targets []string
	Ignore  []string
	Device  Device
	// GGMLType (FormatGGUF) is the weights' block type; the zero value is
	// F32, so set it (GGMLQ8_0, GGMLQ4K, ...). SplitExperts stores routed
	// experts one tensor per expert (Candle's quantized_llama layout).
	GGMLType     GGMLType
	SplitExperts bool
	// GGUFMix (FormatGGUF), if set, is a mixture of types instead of one
	// GGMLType: llama-quantize's file types ("Q4_K_M", "Q5_K_S", ...) with
	// its per-tensor choices, or ktq's "MOE_Q4_K" (routed experts Q4_K,
	// other weights Q8_0) and its siblings.
	GGUFMix string
	// GGUFTokenizerPre (FormatGGUF), if set, is llama.cpp's pre-tokenizer
	// name to write (tokenizer.ggml.pre) instead of the one derived from
	// tokenizer.json; it is written unchecked.
	GGUFTokenizerPre string
	// GGUFImatrix (FormatGGUF), if set, is an importance matrix
	// (llama-imatrix's GGUF or legacy .dat) to quantize with, as
	// llama-quantize --imatrix.
	GGUFImatrix string
	// GGUFRoutingStats (FormatGGUF), if set, is a routing_stats.json whose
	// per-expert token counts are recorded in the file (ktq.routing.*);
	// unset = from a GGUF imatrix's counts, if any.
	GGUFRoutingStats string
	// GGUFSourceSHA256 (FormatGGUF) records the SHA-256 of the source's
	// config, tokenizer and weight files (reads the checkpoint once more).
	GGUFSourceSHA256 bool
	// GPTQ, if set, calibrates FormatCompressedTensors with GPTQ instead of
	// rounding to nearest.
	GPTQ *GPTQOptions
	// AWQ, if set, calibrates with AWQ instead (not together with GPTQ).
	AWQ           *AWQOptions
	Threads       int
	MaxShardBytes uint64
	Overwrite     bool
	Resume        bool
	// Progress, if set, is called from another goroutine about every
	// ProgressEvery (default 200 ms) while the conversion runs.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Convert writes m into outDir in opts.Format (BF16 Hugging Face checkpoint
// by default). It blocks until done; cancelling ctx stops it with an *Error
// of StatusCancelled.
func Convert(ctx context.Context, m *Model, outDir string, opts ConvertOptions) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.raw == nil {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return &Error{Status: StatusCancelled, Message: err.Error()}
	}
	if opts.GPTQ != nil && opts.AWQ != nil {
		return &Error{Status: StatusInvalidArgument, Message: "ConvertOptions: set GPTQ or AWQ, not both"}
	}
	var calibration ktqswig.Struct_SS_ktq_calibration
	calibrated, dataset, samples, seqLen, seed := false, "", 0, 0, uint64(0)
	if g := opts.GPTQ; g != nil {
		calibrated, dataset, samples, seqLen, seed = true, g.Dataset, g.Samples, g.SequenceLength, g.Seed
	}
	if a := opts.AWQ; a != nil {
		calibrated, dataset, samples, seqLen, seed = true, a.Dataset, a.Samples, a.SequenceLength, a.Seed
	}
	if calibrated {
		if seed == 0 {
			seed = 42
		}
		if err := call(func(res ktqswig.Ktqs_result) {
			calibration = ktqswig.Ktqs_calibration_open(m.tokenizerPath(), dataset, samples, seqLen, seed, res)
		}); err != nil {
			return err
		}
		defer ktqswig.Ktqs_calibration_free(calibration)
	}
	var writer ktqswig.Struct_SS_ktq_writer
	if err := call(func(res ktqswig.Ktqs_result) {
		writer = ktqswig.Ktqs_writer_open(m.raw, outDir, int(opts.Format), opts.MaxShardBytes, b2i(opts.Overwrite),
			b2i(opts.Resume), opts.NumaParts, b2i(opts.LooseFiles), opts.Scheme.Bits, opts.Scheme.GroupSize,
			b2i(opts.Scheme.Asymmetric), strings.Join(opts.Targets, "\n"), strings.Join(opts.Ignore, "\n"),
			b2i(opts.Ignore == nil), b2i(opts.Scheme.DtypeRounding), b2i(opts.Scheme.MseObserver), int(opts.GGMLType), b2i(opts.SplitExperts),
			opts.GGUFMix, opts.GGUFTokenizerPre, opts.GGUFImatrix, opts.GGUFRoutingStats, b2i(opts.GGUFSourceSHA256), res)
	}); err != nil {
		return err
	}
	defer ktqswig.Ktqs_writer_free(writer)

	token := ktqswig.NewKtqs_token()
	defer ktqswig.DeleteKtqs_token(token)
	every := opts.ProgressEvery
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	done := make(chan struct{})
	watcher := make(chan struct{})
	go func() { // maps ctx to the C cancel flag and reports progress
		defer close(watcher)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				ktqswig.Ktqs_token_cancel(token)
				<-done
				return
			case <-tick.C:
				if opts.Progress != nil {
					opts.Progress(Progress{Layer: ktqswig.Ktqs_token_layer(token),
						BytesDone: ktqswig.Ktqs_token_bytes_done(token), BytesTotal: ktqswig.Ktqs_token_bytes_total(token)})
				}
			}
		}
	}()
	err := call(func(res ktqswig.Ktqs_result) {
		if g := opts.GPTQ; g != nil {
			damp := g.DampeningFrac
			if damp == 0 {
				damp = -1 // the library's default
			}
			ktqswig.Ktqs_write_gptq(m.raw, writer, opts.Threads, int(opts.Device), calibration, damp, b2i(g.ActOrderNone),
				b2i(g.MoEHessianAll), g.MaxCPUMemory, token, res)
			return
		}
		if a := opts.AWQ; a != nil {
			ktqswig.Ktqs_write_awq(m.raw, writer, opts.Threads, int(opts.Device), calibration, a.Grid, b2i(a.ActivationsOnly), b2i(a.Clip),
				b2i(a.MoEHessianAll), a.MaxCPUMemory, token, res)
			return
		}
		ktqswig.Ktqs_write(m.raw, writer, opts.Threads, int(opts.Device), token, res)
	})
	close(done)
	<-watcher
	if err == nil && opts.Progress != nil {
		total := ktqswig.Ktqs_token_bytes_total(token)
		opts.Progress(Progress{Layer: ktqswig.Ktqs_token_layer(token), BytesDone: total, BytesTotal: total})
	}
	return err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
