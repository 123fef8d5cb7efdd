package ktq_test

import (
	"testing"

	ktq "github.com/ktq/ktq/wrappers/go"
)

func TestSystemInfo(t *testing.T) {
	s, err := ktq.SystemInfo()
	if err != nil {
		t.Fatal(err)
	}
	if s.Cores < 1 || s.NUMANodes < 1 || s.PUs < s.Cores || s.CPUModel == "" || s.CUDADevices < 0 ||
		(!s.CUDABuilt && s.CUDADevices != 0) || (s.CUDADevices == 0 && s.CUDADevice0 != "") {
		t.Fatalf("implausible system %+v", s)
	}
	if s.AVX512VNNI && !s.AVX512F {
		t.Fatalf("AVX512-VNNI without AVX512F: %+v", s)
	}
	t.Logf("%+v", s)
}
