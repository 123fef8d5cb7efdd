package ktq

import "github.com/ktq/ktq/wrappers/go/internal/ktqswig"

// System is what this machine offers libktq's engines (from hwloc, CPUID
// and the CUDA runtime).
type System struct {
	NUMANodes int // >= 1
	Cores     int // physical cores
	PUs       int // hardware threads
	CPUModel  string
	// CPU instruction sets.
	AVX2, AVX512F, AVX512VNNI, AVX512BF16 bool
	AMXTile, AMXInt8, AMXBF16             bool
	// CUDABuilt reports a libktq compiled with CUDA; CUDADevices counts the
	// usable devices (0 without CUDA), CUDADevice0 names the first ("" if
	// none).
	CUDABuilt   bool
	CUDADevices int
	CUDADevice0 string
}

// SystemInfo describes this machine.
func SystemInfo() (System, error) {
	var s System
	err := call(func(res ktqswig.Ktqs_result) {
		num := func(f string) int {
			if res.GetStatus() != 0 {
				return 0
			}
			return int(ktqswig.Ktqs_system_num(f, res))
		}
		flag := func(f string) bool { return num(f) != 0 }
		text := func(f string) string {
			if res.GetStatus() != 0 {
				return ""
			}
			return ktqswig.Ktqs_system_text(f, res)
		}
		s = System{NUMANodes: num("numa_nodes"), Cores: num("cores"), PUs: num("pus"), CPUModel: text("cpu_model"),
			AVX2: flag("avx2"), AVX512F: flag("avx512f"), AVX512VNNI: flag("avx512_vnni"),
			AVX512BF16: flag("avx512_bf16"), AMXTile: flag("amx_tile"), AMXInt8: flag("amx_int8"),
			AMXBF16: flag("amx_bf16"), CUDABuilt: flag("cuda_built"), CUDADevices: num("cuda_devices"),
			CUDADevice0: text("cuda_device0")}
	})
	if err != nil {
		return System{}, err
	}
	return s, nil
}
