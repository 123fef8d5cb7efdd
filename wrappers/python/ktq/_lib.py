"""Loads libktq and declares the part of its C ABI the Python API uses.

The library is found, in order, at $KTQ_LIBRARY, in the libdir of
`pkg-config ktq`, then by the system loader (ctypes.util.find_library).
The ctypes declarations mirror include/ktq/*.h; tests/test_layout.py checks
every struct against the C compiler.
"""
import ctypes
import ctypes.util
import os
import subprocess

c_int, c_uint, c_size_t, c_uint64, c_int64 = ctypes.c_int, ctypes.c_uint, ctypes.c_size_t, ctypes.c_uint64, ctypes.c_int64
c_char_p, c_void_p = ctypes.c_char_p, ctypes.c_void_p

OPEN_OPTIONS_VERSION = 3
MODEL_INFO_VERSION = TENSOR_INFO_VERSION = 1
PROGRESS_VERSION = 1
QUANTIZE_OPTIONS_VERSION = 6
SYSTEM_INFO_VERSION = 1
EVAL_OPTIONS_VERSION = 2
KT_PART_INFO_VERSION = 1
CT_SCHEME_VERSION = 2
GPTQ_OPTIONS_VERSION = 2
CALIBRATION_OPTIONS_VERSION = 1
ENGINE_GPTQ = 5
ENGINE_AWQ = 6
ACT_ORDER = {"none": 0, "static": 1}
MOE_HESSIAN = {"blend": 0, "all": 1}  # ktq_moe_hessian
WRITER_OPTIONS_VERSION = 7
MAX_DIMS = 8
DTYPE_F32, DTYPE_BF16 = 1, 3
FORMAT_HF_BF16 = 1
FORMAT_KT_AMXINT4 = 2
FORMAT_KT_AMXINT8 = 3
FORMAT_COMPRESSED_TENSORS = 4
FORMAT_GGUF = 5
FORMAT_KT_AWQ = 6
GGML_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10, "Q3_K": 11,
              "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "BF16": 30}
DTYPE_F16 = 2
DEVICE_CPU, DEVICE_CUDA = 0, 1
LAYER_GLOBALS = -1


class OpenOptions(ctypes.Structure):
    _fields_ = [("version", c_uint), ("threads", c_int), ("max_header_bytes", c_uint64), ("kt_experts", c_char_p),
                ("gguf_weights", c_char_p)]


class ModelInfo(ctypes.Structure):
    _fields_ = [("version", c_uint), ("architecture", c_char_p), ("model_type", c_char_p), ("path", c_char_p),
                ("notice", c_char_p), ("family", c_int), ("num_layers", c_int), ("hidden_size", c_int),
                ("intermediate_size", c_int), ("moe_intermediate_size", c_int), ("num_experts", c_int),
                ("experts_per_token", c_int), ("first_dense_layers", c_int), ("num_moe_layers", c_int),
                ("num_shared_experts", c_int), ("vocab_size", c_int), ("expert_storage", c_int),
                ("source_dtype", c_int), ("fp8_block_rows", c_int), ("fp8_block_cols", c_int),
                ("num_tensors", c_size_t), ("num_files", c_size_t), ("total_bytes", c_uint64)]


class TensorInfo(ctypes.Structure):
    _fields_ = [("version", c_uint), ("name", c_char_p), ("file", c_char_p), ("dtype", c_int), ("ndim", c_int),
                ("shape", c_int64 * MAX_DIMS), ("nbytes", c_uint64), ("layer", c_int)]


class Progress(ctypes.Structure):
    _fields_ = [("version", c_uint), ("layer", c_int), ("layers_total", c_int), ("tensor", c_char_p),
                ("bytes_done", c_uint64), ("bytes_total", c_uint64)]


PROGRESS_CB = ctypes.CFUNCTYPE(c_int, ctypes.POINTER(Progress), c_void_p)


class WriterOptions(ctypes.Structure):
    _fields_ = [("version", c_uint), ("max_shard_bytes", c_uint64), ("copy_aux_files", c_int), ("overwrite", c_int),
                ("resume", c_int), ("resume_layer", c_int), ("keep_partial", c_int), ("numa_parts", c_int),
                ("loose_files", c_int), ("no_layer_sync", c_int), ("weight_bits", c_int), ("group_size", c_int),
                ("asymmetric", c_int), ("targets", c_char_p), ("ignore", c_char_p), ("scale_dtype", c_int),
                ("ct_rounding", c_int), ("gguf_type", c_int), ("gguf_split_experts", c_int),
                ("gguf_tensor_types", c_char_p), ("gguf_mix", c_char_p),
                ("gguf_tokenizer_pre", c_char_p), ("gguf_imatrix", c_char_p),
                ("gguf_routing_stats", c_char_p), ("gguf_source_sha256", c_int), ("no_sync", c_int),
                ("ct_observer", c_int)]


class QuantizeOptions(ctypes.Structure):
    _fields_ = [("version", c_uint), ("engine", c_int), ("threads", c_int), ("progress", PROGRESS_CB),
                ("payload", c_void_p), ("allow_non_finite", c_int), ("device", c_int), ("calibration", c_void_p),
                ("dampening_frac", ctypes.c_double), ("gptq_block_size", c_int), ("act_order", c_int),
                ("calibration_batch", c_int), ("moe_hessian", c_int), ("moe_all_tokens_weight", ctypes.c_double),
                ("max_device_memory", ctypes.c_uint64), ("devices", ctypes.POINTER(c_int)),
                ("device_count", c_size_t), ("awq_grid", c_int), ("awq_duo_scaling", c_int),
                ("awq_clip", c_int),
                ("max_host_memory", c_uint64)]


class EvalOptions(ctypes.Structure):
    _fields_ = [("version", c_uint), ("window", c_int), ("max_tokens", c_uint64), ("batch_windows", c_int),
                ("progress", PROGRESS_CB), ("payload", c_void_p), ("token_nll", ctypes.POINTER(ctypes.c_double)),
                ("token_nll_capacity", c_size_t), ("device", c_int)]


class EvalResult(ctypes.Structure):
    _fields_ = [("perplexity", ctypes.c_double), ("mean_nll", ctypes.c_double), ("tokens_scored", c_uint64),
                ("windows", c_uint64)]


class CalibrationOptions(ctypes.Structure):
    _fields_ = [("version", c_uint), ("num_samples", c_int), ("max_sequence_length", c_int), ("seed", c_uint64),
                ("text_field", c_char_p)]


class SystemInfo(ctypes.Structure):
    _fields_ = [("version", c_uint), ("numa_nodes", c_int), ("cores", c_int), ("pus", c_int), ("avx2", c_int),
                ("avx512f", c_int), ("avx512_vnni", c_int), ("avx512_bf16", c_int), ("amx_tile", c_int),
                ("amx_int8", c_int), ("amx_bf16", c_int), ("cuda_built", c_int), ("cuda_devices", c_int),
                ("cpu_model", ctypes.c_char * 128), ("cuda_device0", ctypes.c_char * 128)]


class KtPartInfo(ctypes.Structure):
    _fields_ = [("version", c_uint), ("name", c_char_p), ("layer", c_int), ("expert", c_int), ("proj", c_int),
                ("part", c_int), ("method", c_int), ("rows", c_uint64), ("cols", c_uint64), ("packed_bytes", c_uint64)]


class CtScheme(ctypes.Structure):
    _fields_ = [("version", c_uint), ("num_bits", c_int), ("group_size", c_int), ("symmetric", c_int),
                ("dtype", c_int), ("rounding", c_int), ("observer", c_int)]


class GptqOptions(ctypes.Structure):
    _fields_ = [("version", c_uint), ("block_size", c_int), ("dampening_frac", ctypes.c_double),
                ("act_order", c_int), ("threads", c_int), ("device", c_int), ("cuda_device", c_int)]


STRUCTS = {"ktq_open_options": OpenOptions, "ktq_model_info": ModelInfo, "ktq_tensor_info": TensorInfo,
           "ktq_progress": Progress, "ktq_writer_options": WriterOptions, "ktq_quantize_options": QuantizeOptions,
           "ktq_eval_options": EvalOptions, "ktq_eval_result": EvalResult,
           "ktq_calibration_options": CalibrationOptions, "ktq_system_info": SystemInfo,
           "ktq_kt_part_info": KtPartInfo, "ktq_ct_scheme": CtScheme, "ktq_gptq_options": GptqOptions}


def _find_library():
    explicit = os.environ.get("KTQ_LIBRARY")
    if explicit:
        return explicit
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "ktq"], capture_output=True, text=True,
                                check=True).stdout.strip()
        candidate = os.path.join(libdir, "libktq.so.0")
        if os.path.exists(candidate):
            return candidate
    except (OSError, subprocess.CalledProcessError):
        pass
    found = ctypes.util.find_library("ktq")
    if not found:
        raise OSError("libktq not found: install it (cmake --install), set PKG_CONFIG_PATH for its prefix, "
                      "or point KTQ_LIBRARY at libktq.so.0")
    return found


lib = ctypes.CDLL(_find_library())

_E = ctypes.POINTER(c_void_p)  # ktq_error ** (errors are opaque)


def _decl(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_decl("ktq_version", c_char_p)
_decl("ktq_version_number", c_uint)
_decl("ktq_status_str", c_char_p, c_int)
_decl("ktq_error_status", c_int, c_void_p)
_decl("ktq_error_message", c_char_p, c_void_p)
_decl("ktq_error_free", None, c_void_p)
_decl("ktq_dtype_name", c_char_p, c_int)
_decl("ktq_arch_family_name", c_char_p, c_int)
_decl("ktq_open_options_init", c_int, ctypes.POINTER(OpenOptions), c_uint)
_decl("ktq_open_model", c_int, ctypes.POINTER(c_void_p), c_char_p, ctypes.POINTER(OpenOptions), _E)
_decl("ktq_model_free", None, c_void_p)
_decl("ktq_model_info_init", c_int, ctypes.POINTER(ModelInfo), c_uint)
_decl("ktq_model_get_info", c_int, ctypes.POINTER(ModelInfo), c_void_p, _E)
_decl("ktq_tensor_info_init", c_int, ctypes.POINTER(TensorInfo), c_uint)
_decl("ktq_model_tensor_count", c_size_t, c_void_p)
_decl("ktq_model_tensor_info", c_int, ctypes.POINTER(TensorInfo), c_void_p, c_size_t, _E)
_decl("ktq_model_find_tensor", c_int, ctypes.POINTER(c_size_t), c_void_p, c_char_p, _E)
_decl("ktq_model_read_tensor", c_int, c_void_p, c_size_t, c_void_p, c_char_p, c_int, _E)
_decl("ktq_writer_options_init", c_int, ctypes.POINTER(WriterOptions), c_uint)
_decl("ktq_writer_open", c_int, ctypes.POINTER(c_void_p), c_void_p, c_char_p, c_int, ctypes.POINTER(WriterOptions), _E)
_decl("ktq_writer_free", None, c_void_p)
_decl("ktq_quantize_options_init", c_int, ctypes.POINTER(QuantizeOptions), c_uint)
_decl("ktq_system_info_init", c_int, ctypes.POINTER(SystemInfo), c_uint)
_decl("ktq_system_get_info", c_int, ctypes.POINTER(SystemInfo), _E)
_decl("ktq_write", c_int, c_void_p, ctypes.POINTER(QuantizeOptions), c_void_p, _E)
_decl("ktq_tokenizer_open", c_int, ctypes.POINTER(c_void_p), c_char_p, _E)
_decl("ktq_tokenizer_free", None, c_void_p)
_decl("ktq_tokenizer_encode", c_int, ctypes.POINTER(ctypes.c_int32), c_size_t, ctypes.POINTER(c_size_t), c_void_p,
      c_char_p, c_size_t, _E)
_decl("ktq_eval_options_init", c_int, ctypes.POINTER(EvalOptions), c_uint)
_decl("ktq_eval_perplexity", c_int, ctypes.POINTER(EvalResult), c_void_p, c_void_p, c_char_p, c_size_t,
      ctypes.POINTER(EvalOptions), _E)
_decl("ktq_calibration_options_init", c_int, ctypes.POINTER(CalibrationOptions), c_uint)
_decl("ktq_calibration_open", c_int, ctypes.POINTER(c_void_p), c_char_p, c_void_p, ctypes.POINTER(CalibrationOptions),
      _E)
_decl("ktq_calibration_from_tokens", c_int, ctypes.POINTER(c_void_p), ctypes.POINTER(ctypes.c_int32),
      ctypes.POINTER(ctypes.c_uint64), c_size_t, _E)
_decl("ktq_calibration_free", None, c_void_p)
_decl("ktq_model_expert_shape", c_int, ctypes.POINTER(c_int64), ctypes.POINTER(c_int64), c_void_p, c_int, c_int, c_int,
      _E)
_decl("ktq_model_read_expert", c_int, c_void_p, c_size_t, c_void_p, c_int, c_int, c_int, c_int, _E)
_decl("ktq_kt_output_open", c_int, ctypes.POINTER(c_void_p), c_char_p, _E)
_decl("ktq_kt_output_free", None, c_void_p)
_decl("ktq_kt_output_part_count", c_size_t, c_void_p)
_decl("ktq_kt_output_is_merged", c_int, c_void_p)
_decl("ktq_kt_part_info_init", c_int, ctypes.POINTER(KtPartInfo), c_uint)
_decl("ktq_kt_output_part", c_int, ctypes.POINTER(KtPartInfo), c_void_p, c_size_t, _E)
_decl("ktq_kt_output_read", c_int, c_void_p, c_size_t, c_void_p, c_size_t, c_void_p, c_size_t, _E)
_decl("ktq_kt_output_dequantize", c_int, c_void_p, c_size_t, c_void_p, c_size_t, _E)
_decl("ktq_kt_merge", c_int, c_char_p, c_char_p, c_void_p, ctypes.POINTER(WriterOptions), _E)
_decl("ktq_ggml_block_size", c_size_t, c_int)
_decl("ktq_ggml_type_size", c_size_t, c_int)
_decl("ktq_quantize_tensor", c_int, c_void_p, c_size_t, c_void_p, c_size_t, c_int, _E)
_decl("ktq_quantize_rows", c_int, c_void_p, c_size_t, c_void_p, c_size_t, c_size_t, c_void_p, c_int, _E)
_decl("ktq_dequantize_tensor", c_int, c_void_p, c_size_t, c_void_p, c_size_t, c_int, _E)
_decl("ktq_ct_scheme_init", c_int, ctypes.POINTER(CtScheme), c_uint)
_decl("ktq_ct_sizes", c_int, ctypes.POINTER(c_size_t), ctypes.POINTER(c_size_t), ctypes.POINTER(c_size_t), c_uint64,
      c_uint64, ctypes.POINTER(CtScheme), _E)
_decl("ktq_gptq_options_init", c_int, ctypes.POINTER(GptqOptions), c_uint)
_decl("ktq_gptq_new", c_int, ctypes.POINTER(c_void_p), c_uint64, _E)
_decl("ktq_gptq_free", None, c_void_p)
_decl("ktq_gptq_add_batch", c_int, c_void_p, c_void_p, c_uint64, _E)
_decl("ktq_gptq_hessian", c_int, c_void_p, c_size_t, ctypes.POINTER(c_uint64), c_void_p, _E)
_decl("ktq_gptq_quantize", c_int, c_void_p, c_size_t, c_void_p, c_size_t, c_void_p, c_size_t, c_void_p,
      ctypes.POINTER(ctypes.c_double), ctypes.POINTER(c_int), c_void_p, c_void_p, c_uint64, ctypes.POINTER(CtScheme),
      ctypes.POINTER(GptqOptions), _E)
