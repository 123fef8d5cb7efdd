// kt-kernel's AMX expert weights: symmetric per-row INT8 / INT4 quantization
// packed into the tile order its AMX/AVX-512 MoE kernels load
// (kt-kernel AMXInt8_MOE / AMXInt4_MOE, "AMXINT8" / "AMXINT4").
//
// One implementation, used by the kt engine, `ktq compare` and the tests.
// The arithmetic follows the binary kt-kernel ships (0.7.2), not only its
// source: see docs/formats/kt-kernel.md for each rule and where it was
// verified. An AVX-512 path and a portable path produce the same bytes
// (the only float operations are max, one multiply and one division per row,
// and round-half-even conversions, all exact or correctly rounded).
#pragma once

#include <cstdint>
#include <string>

namespace ktq::kt_amx {

enum class Method { Int8, Int4 };

const char *method_prefix(Method m);  // "INT8" / "INT4" (file and key names)

// Bytes of the packed codes of an [n, k] matrix (n output rows); the scales
// are n float32 stored separately.
uint64_t packed_bytes(Method m, uint64_t n, uint64_t k);

// Empty when [n, k] can be packed, otherwise why not (n must be a multiple of
// 32, k of 64 for INT8 and 128 for INT4: one AMX tile step).
std::string shape_problem(Method m, uint64_t n, uint64_t k);

// Quantizes the BF16 matrix `src` ([n, k], rows `ld` elements apart) into
// `packed` (packed_bytes(m, n, k)) and `scales` (n float32). Safe to call from
// many threads on distinct outputs. Returns true when the input holds Inf or
// NaN (found on the way, so callers need no separate pass).
bool quantize_pack(Method m, const uint16_t *src, uint64_t n, uint64_t k, uint64_t ld, uint8_t *packed,
                   float *scales);

// The inverse, for checks and `ktq compare`: the dequantized [n, k] weights
// (code x scale; INT4 codes count 16 per step as the kernels do).
void unpack_dequantize(Method m, const uint8_t *packed, const float *scales, uint64_t n, uint64_t k, float *dst);

// kt-kernel's names for one expert part (proj: 0 gate, 1 up, 2 down).
const char *proj_name(int proj);
// "blk.L.ffn_gate_exps.E.numa.P": + ".weight" / ".scale" in merged files.
std::string part_name(int layer, int proj, int expert, int part);
// "_layer_L/_numa_P/INT4_gate_E_<bytes>Byte_quant_.kt" (or "..._scale_.kt").
std::string loose_file(Method m, int layer, int proj, int expert, int part, uint64_t bytes, bool is_scale);

// Forces the portable path (tests compare both paths on AVX-512 machines).
void set_force_portable(bool portable);
bool uses_avx512();

}  // namespace ktq::kt_amx
