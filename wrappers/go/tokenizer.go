package ktq

import (
	"errors"
	"sync"

	"github.com/ktq/ktq/wrappers/go/internal/ktqswig"
)

// Tokenizer is a checkpoint's tokenizer (byte-level BPE from its
// tokenizer.json) as Hugging Face tokenizers runs it: the token ids ktq's
// calibration and perplexity see. Encode may run on several goroutines at
// once; Close waits for running calls.
type Tokenizer struct {
	mu  sync.RWMutex
	raw ktqswig.Struct_SS_ktq_tokenizer
}

// OpenTokenizer loads path: a tokenizer.json file or a model folder that
// holds one. Tokenizers libktq does not implement fail with StatusUnsupported
// naming the field, never with a silently different encoding.
func OpenTokenizer(path string) (*Tokenizer, error) {
	var raw ktqswig.Struct_SS_ktq_tokenizer
	if err := call(func(res ktqswig.Ktqs_result) { raw = ktqswig.Ktqs_tokenizer_open(path, res) }); err != nil {
		return nil, err
	}
	return &Tokenizer{raw: raw}, nil
}

// Close releases the tokenizer. Closing twice is harmless.
func (t *Tokenizer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.raw != nil {
		ktqswig.Ktqs_tokenizer_free(t.raw)
		t.raw = nil
	}
	return nil
}

// VocabSize is the number of token ids (largest id + 1); 0 once closed.
func (t *Tokenizer) VocabSize() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.raw == nil {
		return 0
	}
	return int(ktqswig.Ktqs_tokenizer_vocab_size(t.raw))
}

// Encode tokenizes UTF-8 text, with the special tokens the tokenizer's
// post-processor adds. Invalid UTF-8 is an *Error of StatusFormat giving
// the byte offset.
func (t *Tokenizer) Encode(text string) ([]int32, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.raw == nil {
		return nil, ErrClosed
	}
	in := []byte(text)
	ids := make([]int32, len(in)/2+8) // usually enough: a retry says how many otherwise
	for {
		var n int64
		err := call(func(res ktqswig.Ktqs_result) { n = ktqswig.Ktqs_tokenizer_encode(t.raw, in, ids, res) })
		var kerr *Error
		if errors.As(err, &kerr) && kerr.Status == StatusBufferTooSmall && n > int64(len(ids)) {
			size, lerr := length(n, 4, "token ids")
			if lerr != nil {
				return nil, lerr
			}
			ids = make([]int32, size)
			continue
		}
		if err != nil {
			return nil, err
		}
		return ids[:n:n], nil
	}
}
