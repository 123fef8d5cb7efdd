package ktq_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	ktq "github.com/ktq/ktq/wrappers/go"
)

func TestTokenizerMatchesHFTokenizers(t *testing.T) {
	dir := sharedModel(t, "tiny-qwen3-moe")
	var g struct {
		Models map[string][]struct {
			Text string  `json:"text"`
			IDs  []int32 `json:"ids"`
		} `json:"models"`
	}
	golden(t, "tokens.json", &g)
	cases := g.Models["tiny-qwen3-moe"]
	if len(cases) == 0 {
		t.Fatal("tokens.json has no tiny-qwen3-moe cases")
	}
	for _, path := range []string{dir, filepath.Join(dir, "tokenizer.json")} {
		tok, err := ktq.OpenTokenizer(path)
		if err != nil {
			t.Fatal(err)
		}
		if v := tok.VocabSize(); v < 4096 {
			t.Fatalf("vocab size %d", v)
		}
		for _, c := range cases {
			ids, err := tok.Encode(c.Text)
			if err != nil {
				t.Fatalf("%q: %v", c.Text, err)
			}
			if len(ids) != len(c.IDs) || (len(ids) > 0 && !reflect.DeepEqual(ids, c.IDs)) {
				t.Fatalf("%q: ids %v, tokenizers gives %v", c.Text, ids, c.IDs)
			}
		}
		tok.Close()
	}

	tok, err := ktq.OpenTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	// A text of many short tokens needs more ids than Encode's first guess.
	long := strings.Repeat("1234567890", 1000) // one id per digit
	ids, err := tok.Encode(long)
	if err != nil || len(ids) <= len(long)/2+8 { // more than the first guess
		t.Fatalf("%d ids for %d bytes, %v", len(ids), len(long), err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range cases {
				if ids, err := tok.Encode(c.Text); err != nil || len(ids) != len(c.IDs) {
					t.Errorf("concurrent %q: %v, %v", c.Text, ids, err)
				}
			}
		}()
	}
	wg.Wait()

	var kerr *ktq.Error
	if _, err := tok.Encode("abc\xff\xfedef"); !errors.As(err, &kerr) || kerr.Status != ktq.StatusFormat {
		t.Fatalf("invalid UTF-8: want a format error, got %v", err)
	}
	tok.Close()
	tok.Close()
	if _, err := tok.Encode("x"); !errors.Is(err, ktq.ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
	if tok.VocabSize() != 0 {
		t.Fatal("a closed tokenizer has a vocabulary")
	}
	if _, err := ktq.OpenTokenizer("/nonexistent/tok"); !errors.As(err, &kerr) || !strings.Contains(kerr.Message, "/nonexistent/tok") {
		t.Fatalf("want an *Error naming the path, got %v", err)
	}
}
