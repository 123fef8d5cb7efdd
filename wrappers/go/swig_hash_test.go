package ktq_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// Go caches SWIG output by the .swig file's bytes only; the hash of the
// shared interface recorded there forces regeneration when ktq.i changes.
func TestSwigInterfaceHash(t *testing.T) {
	iface, err := os.ReadFile("../swig/ktq.i")
	if err != nil {
		t.Fatal(err)
	}
	swig, err := os.ReadFile("internal/ktqswig/ktqswig.swig")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(iface)
	want := "ktq.i sha256: " + hex.EncodeToString(sum[:])
	if !strings.Contains(string(swig), want) {
		t.Fatalf("internal/ktqswig/ktqswig.swig must contain %q (update it: wrappers/swig/ktq.i changed)", want)
	}
}
