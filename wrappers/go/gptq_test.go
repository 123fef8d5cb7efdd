package ktq_test

import (
	"errors"
	"math"
	"math/rand"
	"testing"

	ktq "github.com/ktq/ktq/wrappers/go"
	"github.com/ktq/ktq/wrappers/go/internal/ktqswig"
)

const (
	gptqSamples = 256
	gptqIn      = 64
	gptqRows    = 32
	gptqGroup   = 32
)

// gptqData is fixed random inputs with correlated, unevenly scaled columns
// (where GPTQ's error feedback matters) and weights.
func gptqData() (x, w []float32) {
	rng := rand.New(rand.NewSource(7))
	mix := make([]float64, gptqIn*gptqIn)
	for i := range mix {
		mix[i] = rng.NormFloat64() / 8
	}
	x = make([]float32, gptqSamples*gptqIn)
	z := make([]float64, gptqIn)
	for n := 0; n < gptqSamples; n++ {
		for i := range z {
			z[i] = rng.NormFloat64()
		}
		for c := 0; c < gptqIn; c++ {
			v := z[c] * (0.2 + float64(c%7))
			for k := 0; k < gptqIn; k++ {
				v += mix[c*gptqIn+k] * z[k]
			}
			x[n*gptqIn+c] = float32(v)
		}
	}
	w = make([]float32, gptqRows*gptqIn)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.05)
	}
	return x, w
}

// outputError is sum((x·(w - q)ᵀ)²): the layer's output error on the data.
func outputError(x, w, q []float32) float64 {
	var sum float64
	for n := 0; n < gptqSamples; n++ {
		for r := 0; r < gptqRows; r++ {
			var d float64
			for c := 0; c < gptqIn; c++ {
				d += float64(x[n*gptqIn+c]) * (float64(w[r*gptqIn+c]) - float64(q[r*gptqIn+c]))
			}
			sum += d * d
		}
	}
	return sum
}

// rtn4 is symmetric 4-bit round-to-nearest per group, compressed-tensors'
// rule (docs/formats/compressed-tensors.md): scale = max|w| / 7.5, codes
// rint(w / scale) clamped to [-8, 7]. It returns the scales and weights.
func rtn4(w []float32) (scales, q []float32) {
	q = make([]float32, len(w))
	for r := 0; r < gptqRows; r++ {
		for g := 0; g < gptqIn/gptqGroup; g++ {
			row := w[r*gptqIn+g*gptqGroup:][:gptqGroup]
			var amax float32
			for _, v := range row {
				amax = float32(math.Max(float64(amax), math.Abs(float64(v))))
			}
			s := amax / 7.5
			scales = append(scales, s)
			for c, v := range row {
				code := math.Max(-8, math.Min(7, math.RoundToEven(float64(v/s))))
				q[r*gptqIn+g*gptqGroup+c] = float32(code) * s
			}
		}
	}
	return scales, q
}

func ctSize(t *testing.T, bits, group, symmetric, which int) int {
	res := ktqswig.NewKtqs_result()
	defer ktqswig.DeleteKtqs_result(res)
	n := ktqswig.Ktqs_ct_size(gptqRows, gptqIn, bits, group, symmetric, which, res)
	if res.GetStatus() != 0 {
		t.Fatal(res.GetMessage())
	}
	return int(n)
}

func TestGPTQBeatsRoundToNearest(t *testing.T) {
	x, w := gptqData()
	g, err := ktq.NewGPTQ(gptqIn)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	half := gptqSamples / 2 * gptqIn
	if err := g.AddBatch(x[:half]); err != nil {
		t.Fatal(err)
	}
	if err := g.AddBatch(x[half:]); err != nil {
		t.Fatal(err)
	}
	var kerr *ktq.Error
	if err := g.AddBatch(x[:gptqIn+1]); !errors.As(err, &kerr) || kerr.Status != ktq.StatusInvalidArgument {
		t.Fatalf("a batch of 65 inputs: want an invalid argument error, got %v", err)
	}
	if rows, err := g.Rows(); err != nil || rows != gptqSamples {
		t.Fatalf("Rows() = %d, %v", rows, err)
	}

	rtnScales, rtn := rtn4(w)
	rtnErr := outputError(x, w, rtn)
	for _, natural := range []bool{false, true} {
		r, err := g.Quantize(w, ktq.GPTQQuantizeOptions{Bits: 4, GroupSize: gptqGroup, NaturalOrder: natural})
		if err != nil {
			t.Fatal(err)
		}
		// (a) compressed-tensors sizes: the call layer's and the layout's.
		if len(r.Packed) != ctSize(t, 4, gptqGroup, 1, 0) || len(r.Scales) != ctSize(t, 4, gptqGroup, 1, 1) ||
			len(r.ZeroPoints) != ctSize(t, 4, gptqGroup, 1, 2) || len(r.Packed) != gptqRows*gptqIn*4/32 ||
			len(r.Scales) != gptqRows*gptqIn/gptqGroup || r.ZeroPoints != nil || len(r.Dequantized) != len(w) {
			t.Fatalf("sizes: %d packed, %d scales, %d zero points, %d dequantized", len(r.Packed), len(r.Scales),
				len(r.ZeroPoints), len(r.Dequantized))
		}
		if r.RTNFallback || !(r.Loss > 0) {
			t.Fatalf("fallback %v, loss %v", r.RTNFallback, r.Loss)
		}
		// Scales come from the RTN observer on the original weights.
		if i := firstDiff(r.Scales, rtnScales); i >= 0 {
			t.Fatalf("scale %d: %v, RTN's %v", i, r.Scales[i], rtnScales[i])
		}
		// (c) Dequantized is exactly the packed codes (4-bit fields, LSB
		// first, offset 8) times their group's scale, in float32
		for i, v := range r.Dequantized {
			row, col := i/gptqIn, i%gptqIn
			word := uint32(r.Packed[row*gptqIn/8+col/8])
			q := int((word>>(4*(col%8)))&0xF) - 8
			s := r.Scales[row*(gptqIn/gptqGroup)+col/gptqGroup]
			// (so v / s is an integer in [-8, 7] up to float32 rounding of the quotient)
			if v != float32(q)*s || math.Abs(float64(v/s)-float64(q)) > 1e-5 {
				t.Fatalf("dequantized [%d, %d] = %v, code %d x scale %v = %v, ratio %v", row, col, v, q, s, float32(q)*s, v/s)
			}
		}
		// (b) GPTQ's output error is no larger than rounding to nearest.
		gptqErr := outputError(x, w, r.Dequantized)
		t.Logf("natural order %v: output error GPTQ %.5g, RTN %.5g, loss %.5g", natural, gptqErr, rtnErr, r.Loss)
		if !(gptqErr <= rtnErr) {
			t.Fatalf("GPTQ's output error %v exceeds RTN's %v", gptqErr, rtnErr)
		}
	}

	asym, err := g.Quantize(w, ktq.GPTQQuantizeOptions{Asymmetric: true, GroupSize: -1, Bits: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(asym.ZeroPoints) != ctSize(t, 8, -1, 0, 2) || len(asym.ZeroPoints) != gptqRows*8/32 ||
		len(asym.Scales) != gptqRows || len(asym.Packed) != gptqRows*gptqIn/4 {
		t.Fatalf("asymmetric per-row 8-bit sizes: %d packed, %d scales, %d zero points", len(asym.Packed),
			len(asym.Scales), len(asym.ZeroPoints))
	}

	// BF16: the weights must be BF16 values; the scales come out BF16.
	if _, err := g.Quantize(w, ktq.GPTQQuantizeOptions{BF16: true}); err == nil {
		t.Fatal("BF16 with float32 weights succeeded")
	}
	wb := make([]float32, len(w))
	for i, v := range w {
		wb[i] = math.Float32frombits(math.Float32bits(v) &^ 0xFFFF)
	}
	rb, err := g.Quantize(wb, ktq.GPTQQuantizeOptions{BF16: true, GroupSize: gptqGroup})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range rb.Scales {
		if math.Float32bits(s)&0xFFFF != 0 {
			t.Fatalf("BF16 scale %d = %v is not a BF16 value", i, s)
		}
	}

	// (d) bad input.
	for _, c := range []struct {
		what string
		w    []float32
		opts ktq.GPTQQuantizeOptions
	}{
		{"65 weights", w[:gptqIn+1], ktq.GPTQQuantizeOptions{}},
		{"group 48", w, ktq.GPTQQuantizeOptions{GroupSize: 48}},
		{"negative dampening", w, ktq.GPTQQuantizeOptions{DampeningFrac: -0.5}},
		{"1 bit", w, ktq.GPTQQuantizeOptions{Bits: 1}},
	} {
		if _, err := g.Quantize(c.w, c.opts); !errors.As(err, &kerr) {
			t.Fatalf("%s: want an *Error, got %v", c.what, err)
		}
	}
	if _, err := ktq.NewGPTQ(0); !errors.As(err, &kerr) {
		t.Fatalf("NewGPTQ(0): want an *Error, got %v", err)
	}
	g.Close()
	g.Close()
	if _, err := g.Quantize(w, ktq.GPTQQuantizeOptions{}); !errors.Is(err, ktq.ErrClosed) {
		t.Fatalf("Quantize after Close: want ErrClosed, got %v", err)
	}
	if err := g.AddBatch(x); !errors.Is(err, ktq.ErrClosed) {
		t.Fatalf("AddBatch after Close: want ErrClosed, got %v", err)
	}
}
