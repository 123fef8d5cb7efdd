"""Python API of libktq (ctypes over the stable C ABI).

    import ktq
    with ktq.Model("DeepSeek-V3") as model:
        print(model.info()["num_experts"])
        ktq.convert(model, "DeepSeek-V3-bf16", progress=lambda p: print(p["bytes_done"]) or True)

A Model may be used from several threads at once; a conversion runs on the
calling thread. Every failure raises KtqError with `.status` and a message
naming the file and tensor; using a closed Model raises ValueError.
"""
import array
import ctypes
from ctypes import c_int, c_int64, c_size_t
import os

from . import _lib
from ._lib import lib

__all__ = ["KtqError", "Model", "KtOutput", "Gptq", "convert", "kt_merge", "perplexity", "tokenize",
           "quantize_blocks", "quantize_rows", "dequantize_blocks", "system_info", "version", "STATUS"]

STATUS = {0: "ok", -1: "invalid_argument", -2: "io", -3: "format", -4: "unsupported", -5: "not_found",
          -6: "no_memory", -7: "cancelled", -8: "buffer_too_small", -9: "version", -10: "no_space",
          -11: "state", -12: "internal"}


class KtqError(Exception):
    """A libktq call failed: `.status` (e.g. "not_found") and `.code` (the C status)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.status = STATUS.get(code, str(code))


def version():
    return lib.ktq_version().decode()


def _call(fn, *args):
    err = ctypes.c_void_p()
    code = fn(*args, ctypes.byref(err))
    if code != 0:
        if err:
            message = lib.ktq_error_message(err).decode(errors="replace")
            lib.ktq_error_free(err)
        else:
            message = lib.ktq_status_str(code).decode()
        raise KtqError(code, message)


def _s(p):
    return p.decode(errors="replace") if p else ""


class _Handle:
    """An owned libktq handle: freed by close(), at the end of a `with`
    block, or when collected; using it after close() raises ValueError."""
    _raw = ctypes.c_void_p()

    @staticmethod
    def _free(raw):
        raise NotImplementedError

    def _handle(self):
        if not self._raw:
            raise ValueError(f"this ktq.{type(self).__name__} is closed")
        return self._raw

    def close(self):
        if self._raw:
            self._free(self._raw)
            self._raw = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class Model(_Handle):
    """An opened Hugging Face checkpoint folder (memory-mapped, read-only)."""
    _free = staticmethod(lambda raw: lib.ktq_model_free(raw))

    def __init__(self, path, threads=0, kt_experts=None, gguf_weights=None):
        """`kt_experts`: a kt-kernel AMX output folder of this checkpoint whose
        routed experts (dequantized) replace the checkpoint's, e.g. to score
        it with perplexity(); `gguf_weights`: a GGUF file of it whose weights
        (dequantized, llama's Q/K permutation undone) replace them all."""
        opts = _lib.OpenOptions()
        lib.ktq_open_options_init(ctypes.byref(opts), _lib.OPEN_OPTIONS_VERSION)
        opts.threads = threads
        if kt_experts is not None:
            opts.kt_experts = str(kt_experts).encode()
        if gguf_weights is not None:
            opts.gguf_weights = str(gguf_weights).encode()
        self._raw = ctypes.c_void_p()
        _call(lib.ktq_open_model, ctypes.byref(self._raw), str(path).encode(), ctypes.byref(opts))
        # the checkpoint folder (tokenizer.json lives there too)
        self.path = str(path) if os.path.isdir(str(path)) else os.path.dirname(os.path.abspath(str(path)))


    def info(self):
        i = _lib.ModelInfo()
        lib.ktq_model_info_init(ctypes.byref(i), _lib.MODEL_INFO_VERSION)
        _call(lib.ktq_model_get_info, ctypes.byref(i), self._handle())
        return {
            "architecture": _s(i.architecture), "model_type": _s(i.model_type),
            "family": _s(lib.ktq_arch_family_name(i.family)), "notice": _s(i.notice),
            "num_layers": i.num_layers, "hidden_size": i.hidden_size, "num_experts": i.num_experts,
            "experts_per_token": i.experts_per_token, "moe_intermediate_size": i.moe_intermediate_size,
            "first_dense_layers": i.first_dense_layers, "num_moe_layers": i.num_moe_layers,
            "num_shared_experts": i.num_shared_experts, "source_dtype": _s(lib.ktq_dtype_name(i.source_dtype)),
            "fp8_block_size": (i.fp8_block_rows, i.fp8_block_cols) if i.fp8_block_rows else None,
            "num_tensors": i.num_tensors, "total_bytes": i.total_bytes,
        }

    def _tensor_at(self, index):
        t = _lib.TensorInfo()
        lib.ktq_tensor_info_init(ctypes.byref(t), _lib.TENSOR_INFO_VERSION)
        _call(lib.ktq_model_tensor_info, ctypes.byref(t), self._handle(), index)
        return {"name": _s(t.name), "file": _s(t.file), "dtype": _s(lib.ktq_dtype_name(t.dtype)),
                "shape": list(t.shape[: t.ndim]), "nbytes": t.nbytes, "layer": t.layer if t.layer >= 0 else None}

    def tensors(self):
        """Every tensor, in name order."""
        return [self._tensor_at(i) for i in range(lib.ktq_model_tensor_count(self._handle()))]

    def tensor(self, name):
        index = ctypes.c_size_t()
        _call(lib.ktq_model_find_tensor, ctypes.byref(index), self._handle(), name.encode())
        return self._tensor_at(index.value)

    def read_tensor(self, name, dtype="f32"):
        """The tensor as a flat array.array: 'f' (F32) or 'H' (BF16 bit patterns)."""
        numel = 1
        for d in self.tensor(name)["shape"]:
            numel *= d
        out = array.array("f" if dtype == "f32" else "H", bytes(numel * (4 if dtype == "f32" else 2)))
        address, _ = out.buffer_info()
        code = _lib.DTYPE_F32 if dtype == "f32" else _lib.DTYPE_BF16
        _call(lib.ktq_model_read_tensor, ctypes.c_void_p(address), numel * out.itemsize, self._handle(),
              name.encode(), code)
        return out

    def expert_shape(self, layer, expert, proj):
        """(rows, cols) of routed expert `expert`'s `proj` ("gate", "up" or
        "down") matrix in `layer`: rows = output features."""
        rows, cols = c_int64(), c_int64()
        _call(lib.ktq_model_expert_shape, ctypes.byref(rows), ctypes.byref(cols), self._handle(), layer, expert,
              _proj(proj))
        return rows.value, cols.value

    def read_expert(self, layer, expert, proj, dtype="f32"):
        """One routed expert matrix, row-major [rows, cols], whatever the
        storage (per expert or fused); as read_tensor's array."""
        rows, cols = self.expert_shape(layer, expert, proj)
        out = array.array("f" if dtype == "f32" else "H", bytes(rows * cols * (4 if dtype == "f32" else 2)))
        address, _ = out.buffer_info()
        code = _lib.DTYPE_F32 if dtype == "f32" else _lib.DTYPE_BF16
        _call(lib.ktq_model_read_expert, ctypes.c_void_p(address), rows * cols * out.itemsize, self._handle(), layer,
              expert, _proj(proj), code)
        return out


_PROJS = {"gate": 0, "up": 1, "down": 2}


def _proj(name):
    if name not in _PROJS:
        raise ValueError(f"unknown projection {name!r} (gate, up or down)")
    return _PROJS[name]


def _address(buf, itemsize, what):
    """(address, element count) of a writable or read-only buffer of `itemsize`-byte elements (array.array, numpy)."""
    view = memoryview(buf).cast("B")
    if view.nbytes % itemsize:
        raise ValueError(f"{what}: {view.nbytes} bytes are not whole {itemsize}-byte elements")
    holder = (ctypes.c_char * view.nbytes).from_buffer_copy(view) if view.readonly else \
        (ctypes.c_char * view.nbytes).from_buffer(view)
    return holder, view.nbytes // itemsize


class KtOutput(_Handle):
    """A kt-kernel AMX output folder (merged safetensors or loose .kt files)
    opened for reading: its parts (one NUMA part of one expert matrix each),
    their packed bytes and scales, or the weights they stand for."""
    _free = staticmethod(lambda raw: lib.ktq_kt_output_free(raw))

    def __init__(self, path):
        self._raw = ctypes.c_void_p()
        _call(lib.ktq_kt_output_open, ctypes.byref(self._raw), str(path).encode())


    @property
    def merged(self):
        return bool(lib.ktq_kt_output_is_merged(self._handle()))

    def part(self, index):
        i = _lib.KtPartInfo()
        lib.ktq_kt_part_info_init(ctypes.byref(i), _lib.KT_PART_INFO_VERSION)
        _call(lib.ktq_kt_output_part, ctypes.byref(i), self._handle(), index)
        return {"name": _s(i.name), "layer": i.layer, "expert": i.expert, "proj": ("gate", "up", "down")[i.proj],
                "part": i.part, "bits": 4 if i.method == _lib.FORMAT_KT_AMXINT4 else 8, "rows": i.rows,
                "cols": i.cols, "packed_bytes": i.packed_bytes}

    def parts(self):
        return [self.part(i) for i in range(lib.ktq_kt_output_part_count(self._handle()))]

    def read(self, index):
        """(packed weight bytes in kt-kernel's AMX layout, float32 row scales as array('f'))."""
        p = self.part(index)
        packed = bytearray(p["packed_bytes"])
        scales = array.array("f", bytes(4 * p["rows"]))
        holder = (ctypes.c_char * len(packed)).from_buffer(packed)
        _call(lib.ktq_kt_output_read, holder, len(packed), ctypes.c_void_p(scales.buffer_info()[0]), p["rows"],
              self._handle(), index)
        return bytes(packed), scales

    def dequantize(self, index):
        """The part's weights (code x row scale), row-major [rows, cols], as array('f')."""
        p = self.part(index)
        out = array.array("f", bytes(4 * p["rows"] * p["cols"]))
        _call(lib.ktq_kt_output_dequantize, ctypes.c_void_p(out.buffer_info()[0]), len(out), self._handle(), index)
        return out


def kt_merge(out_dir, loose_dir, model=None, overwrite=False, no_sync=False):
    """Merges loose .kt files (`loose_dir`) into kt-kernel's merged
    safetensors in `out_dir` (kt-kernel's merge_cpu_weights.py); with `model`
    (the Model they were converted from) also its other tensors, config and
    tokenizer: the files of a merged conversion, byte for byte. `no_sync`:
    as convert()'s."""
    opts = _lib.WriterOptions()
    lib.ktq_writer_options_init(ctypes.byref(opts), _lib.WRITER_OPTIONS_VERSION)
    opts.overwrite, opts.no_sync = int(overwrite), int(no_sync)
    _call(lib.ktq_kt_merge, str(out_dir).encode(), str(loose_dir).encode(), model._handle() if model else None,
          ctypes.byref(opts))


def _ggml_type(name):
    if name not in _lib.GGML_TYPES:
        raise ValueError(f"unknown ggml type {name!r} (available: {', '.join(_lib.GGML_TYPES)})")
    return _lib.GGML_TYPES[name]


def quantize_blocks(values, gguf_type):
    """ggml blocks (bytes) of float32 `values` (array('f'), numpy float32 or
    any buffer of float32; a whole number of blocks), bit-identical to ggml's
    reference quantizer of `gguf_type` ("Q4_K", ...)."""
    t = _ggml_type(gguf_type)
    src, n = _address(values, 4, "values")
    block, size = lib.ktq_ggml_block_size(t), lib.ktq_ggml_type_size(t)
    if not block or n % block:
        raise ValueError(f"{n} values are not a whole number of {gguf_type} blocks ({block} values)")
    out = bytearray(n // block * size)
    _call(lib.ktq_quantize_tensor, (ctypes.c_char * len(out)).from_buffer(out), len(out), src, n, t)
    return bytes(out)


def quantize_rows(values, n_per_row, importance, gguf_type):
    """ggml blocks (bytes) of float32 `values` (whole rows of `n_per_row`)
    quantized with per-column `importance` (n_per_row float32 values: an
    imatrix's for this weight), bit-identical to llama-quantize with that
    imatrix. Types without an importance path in ggml (F32, F16, BF16, Q8_0)
    give quantize_blocks' bytes."""
    t = _ggml_type(gguf_type)
    src, n = _address(values, 4, "values")
    imp, n_imp = _address(importance, 4, "importance")
    if n_per_row <= 0 or n % n_per_row:
        raise ValueError(f"{n} values are not whole rows of {n_per_row}")
    if n_imp != n_per_row:
        raise ValueError(f"importance has {n_imp} values for rows of {n_per_row}")
    block, size = lib.ktq_ggml_block_size(t), lib.ktq_ggml_type_size(t)
    if not block or n_per_row % block:
        raise ValueError(f"rows of {n_per_row} values are not a whole number of {gguf_type} blocks ({block} values)")
    out = bytearray(n // block * size)
    _call(lib.ktq_quantize_rows, (ctypes.c_char * len(out)).from_buffer(out), len(out), src, n // n_per_row, n_per_row,
          imp, t)
    return bytes(out)


def dequantize_blocks(data, gguf_type, n):
    """The `n` float32 values (array('f')) that ggml blocks `data` of `gguf_type` stand for."""
    t = _ggml_type(gguf_type)
    src, nbytes = _address(data, 1, "data")
    out = array.array("f", bytes(4 * n))
    _call(lib.ktq_dequantize_tensor, ctypes.c_void_p(out.buffer_info()[0]), n, src, nbytes, t)
    return out


class Gptq(_Handle):
    """GPTQ for one Linear of a forward pass of your own: add its inputs with
    add_batch(), then quantize() its weight into compressed-tensors arrays."""
    _free = staticmethod(lambda raw: lib.ktq_gptq_free(raw))

    def __init__(self, in_features):
        self.in_features = int(in_features)
        self._raw = ctypes.c_void_p()
        _call(lib.ktq_gptq_new, ctypes.byref(self._raw), self.in_features)


    def add_batch(self, x):
        """Adds input rows (float32 buffer [rows, in_features], row-major) to the Hessian."""
        src, n = _address(x, 4, "x")
        if n % self.in_features:
            raise ValueError(f"{n} values are not whole rows of {self.in_features}")
        _call(lib.ktq_gptq_add_batch, self._handle(), src, n // self.in_features)

    @property
    def rows(self):
        """Input rows added so far."""
        rows = ctypes.c_uint64()
        _call(lib.ktq_gptq_hessian, None, 0, ctypes.byref(rows), self._handle())
        return rows.value

    def quantize(self, weights, bits=4, group_size=128, symmetric=True, dtype="bfloat16", dampening_frac=0.01,
                 actorder="static", device="cpu", cuda_device=0, observer="minmax"):
        """Quantizes `weights` ([rows, in_features]: raw BF16/F16 bit
        patterns (array('H'), numpy uint16) for dtype "bfloat16"/"float16",
        float32 for "float32") with the accumulated Hessian. Returns a dict:
        packed (array('i'), compressed-tensors weight_packed), scales (array
        of `dtype`: 'H' bit patterns or 'f'), zero_points (array('i'), empty
        when symmetric), dequantized (array('f')), loss, rtn_fallback (the
        damped Hessian was not positive definite: rounded to nearest).
        `observer` "mse" starts from llm-compressor's MSE observer's scales
        instead of the min-max ones (see convert())."""
        dtypes = {"bfloat16": (_lib.DTYPE_BF16, "H"), "float16": (_lib.DTYPE_F16, "H"), "float32": (_lib.DTYPE_F32, "f")}
        if dtype not in dtypes:
            raise ValueError(f"unknown dtype {dtype!r} (bfloat16, float16 or float32)")
        if observer not in ("minmax", "mse"):
            raise ValueError(f"unknown observer {observer!r} (minmax or mse)")
        if actorder not in _lib.ACT_ORDER or device not in ("cpu", "cuda"):
            raise ValueError(f"actorder is static or none (got {actorder!r}), device cpu or cuda (got {device!r})")
        code, typecode = dtypes[dtype]
        src, n = _address(weights, 2 if typecode == "H" else 4, "weights")
        if n % self.in_features:
            raise ValueError(f"{n} weights are not whole rows of {self.in_features}")
        rows = n // self.in_features
        scheme = _lib.CtScheme()
        lib.ktq_ct_scheme_init(ctypes.byref(scheme), _lib.CT_SCHEME_VERSION)
        scheme.num_bits, scheme.group_size, scheme.symmetric, scheme.dtype = bits, group_size, int(symmetric), code
        scheme.observer = 1 if observer == "mse" else 0
        sizes = [c_size_t(), c_size_t(), c_size_t()]
        _call(lib.ktq_ct_sizes, *map(ctypes.byref, sizes), rows, self.in_features, ctypes.byref(scheme))
        packed = array.array("i", bytes(4 * sizes[0].value))
        scales = array.array(typecode, bytes(array.array(typecode).itemsize * sizes[1].value))
        zero_points = array.array("i", bytes(4 * sizes[2].value))
        dequantized = array.array("f", bytes(4 * n))
        opts = _lib.GptqOptions()
        lib.ktq_gptq_options_init(ctypes.byref(opts), _lib.GPTQ_OPTIONS_VERSION)
        opts.dampening_frac, opts.act_order = dampening_frac, _lib.ACT_ORDER[actorder]
        opts.device = _lib.DEVICE_CUDA if device == "cuda" else _lib.DEVICE_CPU
        opts.cuda_device = cuda_device
        loss, fallback = ctypes.c_double(), c_int()
        addr = lambda a: ctypes.c_void_p(a.buffer_info()[0]) if len(a) else None
        _call(lib.ktq_gptq_quantize, addr(packed), len(packed), addr(scales), len(scales), addr(zero_points),
              len(zero_points), addr(dequantized), ctypes.byref(loss), ctypes.byref(fallback), self._handle(), src,
              rows, ctypes.byref(scheme), ctypes.byref(opts))
        return {"packed": packed, "scales": scales, "zero_points": zero_points, "dequantized": dequantized,
                "loss": loss.value, "rtn_fallback": bool(fallback.value)}


_FORMATS = {"bf16": _lib.FORMAT_HF_BF16, "kt-int4": _lib.FORMAT_KT_AMXINT4, "kt-int8": _lib.FORMAT_KT_AMXINT8,
            "W4A16": _lib.FORMAT_COMPRESSED_TENSORS, "W8A16": _lib.FORMAT_COMPRESSED_TENSORS,
            "gguf": _lib.FORMAT_GGUF, "kt-awq": _lib.FORMAT_KT_AWQ}


def system_info():
    """What this machine offers the engines: NUMA nodes, cores, CPU
    instruction sets, CUDA (`cuda_built`, `cuda_devices`, `cuda_device0`)."""
    info = _lib.SystemInfo()
    lib.ktq_system_info_init(ctypes.byref(info), _lib.SYSTEM_INFO_VERSION)
    _call(lib.ktq_system_get_info, ctypes.byref(info))
    out = {name: getattr(info, name) for name, _ in _lib.SystemInfo._fields_ if name != "version"}
    out["cpu_model"], out["cuda_device0"] = out["cpu_model"].decode(), out["cuda_device0"].decode()
    return out


def convert(model, out_dir, to="bf16", threads=0, max_shard_bytes=0, overwrite=False, resume=False,
            progress=None, numa_parts=2, loose_files=False, resume_layer=0, group_size=128, asymmetric=None,
            targets=None, ignore=None, device="cpu", rounding="fp32", dtype=None, gguf_type="Q8_0",
            split_experts=False, gguf_mix=None, gguf_tokenizer_pre=None, gguf_imatrix=None, gguf_routing_stats=None, gguf_source_sha256=False,
            engine="rtn", dataset=None, num_calibration_samples=512, max_sequence_length=2048,
            seed=42, dampening_frac=0.01, actorder="static", max_gpu_memory=0, devices=None,
            calibration_tokens=None, awq_grid=20, awq_scaling="duo", awq_clip=False, max_cpu_memory=0,
            moe_hessian="blend", moe_all_tokens_weight=0.2, no_sync=False, observer="minmax"):
    """Converts `model` into `out_dir`: to="bf16" (dequantized checkpoint),
    "kt-int4" or "kt-int8" (kt-kernel's AMX expert layout, split into
    `numa_parts`, merged safetensors or `loose_files`), "kt-awq" (an AutoAWQ
    checkpoint's experts re-packed for kt-kernel's AWQ kernels), "W4A16" or "W8A16"
    (a compressed-tensors checkpoint as llm-compressor writes it, with
    `group_size` (-1 = per channel), `asymmetric`, `targets` and `ignore`:
    lists of compressed-tensors patterns, None = the defaults; computed on
    `device` "cpu" or "cuda"; `rounding` "fp32" gives the bytes llm-compressor
    writes on a GPU, "dtype" those it writes on a CPU; `dtype` "bfloat16",
    "float16" or "float32" for scales and kept tensors, None = the model's;
    `observer` "minmax" (llm-compressor's default) or "mse" (each group's
    range shrunk to the smallest |error|^2.4, llm-compressor's "mse"; slower,
    usually more accurate, most of all with engine="gptq"; not with "awq")).
    "gguf" writes one GGUF file at `out_dir` (a file path) with weights in
    `gguf_type` ("Q8_0", "Q4_K", ...; or a mixture that is not a type name:
    "Q4_K_M", "MOE_Q4_K", ...), or in the mixture `gguf_mix` (llama-quantize's
    file types, also "Q4_0" etc. in its non-pure sense), experts stacked or
    `split_experts`; `gguf_tokenizer_pre` writes that llama.cpp pre-tokenizer
    name instead of the one derived from tokenizer.json (ktq refuses
    pre-tokenizers it does not recognise); `gguf_imatrix` quantizes with that
    importance matrix file (llama-imatrix's), as llama-quantize --imatrix;
    `gguf_routing_stats` records a routing_stats.json's per-expert token counts;
    `gguf_source_sha256` the SHA-256 of the source files.
    W4A16/W8A16 with engine="gptq" calibrate GPTQ on `dataset` (a text or
    JSONL file; `num_calibration_samples` x `max_sequence_length` tokens,
    drawn with `seed`; `dampening_frac`; `actorder` "static" or "none"),
    or on `calibration_tokens` (a list of token-id sequences) instead of a
    dataset. engine="awq" calibrates AWQ the same way, also into "gguf"
    (the search then measures the plan's ggml block types); `max_cpu_memory`
    bytes of host memory both may hold for calibration (0 = no limit;
    activations go to a temporary file past half of it) (`awq_grid` exponents,
    `awq_scaling` "duo" or "act", `awq_clip` AutoAWQ's clipping search); its default is asymmetric (zero points),
    the other engines' symmetric. Routed experts, both engines: `moe_hessian` "blend" weighs the tokens the
    router sends an expert plus `moe_all_tokens_weight` x all tokens (GPTQ's Hessians, AWQ's up -> down
    search), "all" every token alike (llm-compressor's moe_calibrate_all_experts);
    on device="cuda" the engine holds at most `max_gpu_memory` bytes there
    (0 = 80 % of what is free) and uses the CUDA `devices` (a list of
    indices; None = device 0).
    `no_sync` skips every fsync of the weight files (ktq_writer_options.no_sync: as fast as kt-kernel's
    converter and as durable; a power loss may leave files that look complete and are not).
    `progress(dict)` returns False to cancel
    (KtqError with status "cancelled"; nothing with a final name is left)."""
    if to not in _FORMATS:
        raise ValueError(f"unknown target format {to!r} (available: {', '.join(map(repr, _FORMATS))})")
    wopts = _lib.WriterOptions()
    lib.ktq_writer_options_init(ctypes.byref(wopts), _lib.WRITER_OPTIONS_VERSION)
    wopts.max_shard_bytes, wopts.overwrite = max_shard_bytes, int(overwrite)
    wopts.resume, wopts.resume_layer = int(resume or resume_layer > 0), resume_layer
    wopts.numa_parts, wopts.loose_files = numa_parts, int(loose_files)
    wopts.no_sync = int(no_sync)
    if to in ("W4A16", "W8A16"):
        if asymmetric is None:
            asymmetric = engine == "awq"
        wopts.weight_bits, wopts.group_size, wopts.asymmetric = int(to[1]), group_size, int(asymmetric)
        # kept alive in locals until the writer is open (it copies them)
        targets_c = "\n".join(targets).encode() if targets is not None else None
        ignore_c = "\n".join(ignore).encode() if ignore is not None else None
        wopts.targets, wopts.ignore = targets_c, ignore_c
        if rounding not in ("fp32", "dtype"):
            raise ValueError(f"unknown rounding {rounding!r} (fp32 or dtype)")
        wopts.ct_rounding = 1 if rounding == "dtype" else 0
        if observer not in ("minmax", "mse"):
            raise ValueError(f"unknown observer {observer!r} (minmax or mse)")
        wopts.ct_observer = 1 if observer == "mse" else 0
        dtypes = {None: 0, "bfloat16": _lib.DTYPE_BF16, "float16": _lib.DTYPE_F16, "float32": _lib.DTYPE_F32}
        if dtype not in dtypes:
            raise ValueError(f"unknown dtype {dtype!r} (bfloat16, float16 or float32)")
        wopts.scale_dtype = dtypes[dtype]
    if to == "gguf":
        if gguf_mix is None and gguf_type not in _lib.GGML_TYPES:
            gguf_mix = gguf_type  # a mixture name; the library names the known ones if it is not
        elif gguf_type not in _lib.GGML_TYPES:
            raise ValueError(f"unknown ggml type {gguf_type!r} (available: {', '.join(_lib.GGML_TYPES)})")
        else:
            wopts.gguf_type = _lib.GGML_TYPES[gguf_type]
        wopts.gguf_split_experts = int(split_experts)
        mix_c = gguf_mix.encode() if gguf_mix else None  # kept alive until the writer is open
        wopts.gguf_mix = mix_c
        pre_c = gguf_tokenizer_pre.encode() if gguf_tokenizer_pre else None  # kept alive like mix_c
        wopts.gguf_tokenizer_pre = pre_c
        imatrix_c = os.fsencode(gguf_imatrix) if gguf_imatrix else None  # kept alive like mix_c
        wopts.gguf_imatrix = imatrix_c
        routing_c = os.fsencode(gguf_routing_stats) if gguf_routing_stats else None  # kept alive like mix_c
        wopts.gguf_routing_stats = routing_c
        wopts.gguf_source_sha256 = int(gguf_source_sha256)
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r} (cpu or cuda)")
    if engine not in ("rtn", "gptq", "awq"):
        raise ValueError(f"unknown engine {engine!r} (rtn, gptq or awq)")
    calibrated = engine in ("gptq", "awq")
    writes = ("W4A16", "W8A16", "gguf") if engine == "awq" else ("W4A16", "W8A16")
    if calibrated and (to not in writes or (dataset is None) == (calibration_tokens is None)):
        raise ValueError(f'engine="{engine}" writes {"/".join(writes)} and needs dataset= or calibration_tokens= (one)')
    if engine == "awq" and to == "gguf" and (awq_clip or gguf_imatrix):
        raise ValueError('engine="awq" to="gguf" takes neither awq_clip (built for compressed-tensors groups) nor '
                         'gguf_imatrix (its statistics predate the AWQ scales)')
    if awq_scaling not in ("duo", "act"):
        raise ValueError(f"unknown awq_scaling {awq_scaling!r} (duo or act)")
    if actorder not in _lib.ACT_ORDER:
        raise ValueError(f"unknown actorder {actorder!r} (static or none)")
    if moe_hessian not in _lib.MOE_HESSIAN:
        raise ValueError(f"unknown moe_hessian {moe_hessian!r} (blend or all)")
    calibration = ctypes.c_void_p()
    if calibrated and calibration_tokens is not None:
        seqs = [list(map(int, seq)) for seq in calibration_tokens]
        offsets = [0]
        for seq in seqs:
            offsets.append(offsets[-1] + len(seq))
        ids_c = (ctypes.c_int32 * max(1, offsets[-1]))(*[t for seq in seqs for t in seq])
        offsets_c = (ctypes.c_uint64 * len(offsets))(*offsets)
        _call(lib.ktq_calibration_from_tokens, ctypes.byref(calibration), ids_c, offsets_c, len(seqs))
    elif calibrated:
        with _Tokenizer(model.path) as tok:
            copts = _lib.CalibrationOptions()
            lib.ktq_calibration_options_init(ctypes.byref(copts), _lib.CALIBRATION_OPTIONS_VERSION)
            copts.num_samples, copts.max_sequence_length, copts.seed = num_calibration_samples, max_sequence_length, seed
            _call(lib.ktq_calibration_open, ctypes.byref(calibration), str(dataset).encode(), tok.handle,
                  ctypes.byref(copts))
    writer = ctypes.c_void_p()
    try:
        _call(lib.ktq_writer_open, ctypes.byref(writer), model._handle(), str(out_dir).encode(), _FORMATS[to],
              ctypes.byref(wopts))
    except BaseException:
        lib.ktq_calibration_free(calibration)
        raise
    raised = []

    def trampoline(p, _payload):
        if progress is None:
            return 0
        try:
            c = p.contents
            keep_going = progress({"layer": c.layer if c.layer >= 0 else None, "layers_total": c.layers_total,
                                   "tensor": _s(c.tensor), "bytes_done": c.bytes_done, "bytes_total": c.bytes_total})
            return 0 if keep_going is None or keep_going else 1
        except BaseException as e:  # never let an exception cross into C: cancel, re-raise after
            raised.append(e)
            return 1

    callback = _lib.PROGRESS_CB(trampoline)
    qopts = _lib.QuantizeOptions()
    lib.ktq_quantize_options_init(ctypes.byref(qopts), _lib.QUANTIZE_OPTIONS_VERSION)
    qopts.threads, qopts.progress = threads, callback
    qopts.device = _lib.DEVICE_CUDA if device == "cuda" else _lib.DEVICE_CPU
    qopts.max_device_memory = int(max_gpu_memory)
    if devices:
        dev_array = (ctypes.c_int * len(devices))(*devices)  # kept alive until the conversion returns
        qopts.devices, qopts.device_count = dev_array, len(devices)
    if calibrated:
        qopts.engine = _lib.ENGINE_AWQ if engine == "awq" else _lib.ENGINE_GPTQ
        qopts.calibration = calibration
        qopts.dampening_frac, qopts.act_order = dampening_frac, _lib.ACT_ORDER[actorder]
        qopts.awq_grid, qopts.awq_duo_scaling, qopts.awq_clip = awq_grid, int(awq_scaling == "duo"), int(awq_clip)
        qopts.max_host_memory = max_cpu_memory
        qopts.moe_hessian, qopts.moe_all_tokens_weight = _lib.MOE_HESSIAN[moe_hessian], moe_all_tokens_weight
    try:
        _call(lib.ktq_write, model._handle(), ctypes.byref(qopts), writer)
    except KtqError:
        if raised:
            raise raised[0]
        raise
    finally:
        lib.ktq_writer_free(writer)
        lib.ktq_calibration_free(calibration)


class _Tokenizer:
    def __init__(self, path):
        self.handle = ctypes.c_void_p()
        _call(lib.ktq_tokenizer_open, ctypes.byref(self.handle), str(path).encode())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        lib.ktq_tokenizer_free(self.handle)
        self.handle = ctypes.c_void_p()

    def encode(self, text):
        data = text.encode() if isinstance(text, str) else bytes(text)
        count = ctypes.c_size_t()
        err = ctypes.c_void_p()
        code = lib.ktq_tokenizer_encode(None, 0, ctypes.byref(count), self.handle, data, len(data), ctypes.byref(err))
        if err:
            lib.ktq_error_free(err)
        if code == 0:
            return []
        if code != -8:  # anything but "buffer too small": raise with the message
            _call(lib.ktq_tokenizer_encode, None, 0, ctypes.byref(count), self.handle, data, len(data))
        ids = (ctypes.c_int32 * count.value)()
        _call(lib.ktq_tokenizer_encode, ids, count.value, ctypes.byref(count), self.handle, data, len(data))
        return list(ids)


def tokenize(model_or_tokenizer_json, text):
    """Token ids of `text` (str or UTF-8 bytes) with a model folder's
    tokenizer.json, as Hugging Face tokenizers encodes it."""
    with _Tokenizer(model_or_tokenizer_json) as tok:
        return tok.encode(text)


def perplexity(model, text, window=256, max_tokens=131072, device="cpu"):
    """Perplexity of `model` (a Model) on `text` (str or bytes) with ktq's
    native forward pass: the first `max_tokens` tokens (0 = all) as windows of
    `window` tokens, its products on `device` ("cpu" or "cuda"). Returns a
    dict: perplexity, mean_nll, tokens_scored, windows."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    opts = _lib.EvalOptions()
    lib.ktq_eval_options_init(ctypes.byref(opts), _lib.EVAL_OPTIONS_VERSION)
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r} (cpu or cuda)")
    opts.window, opts.max_tokens = window, max_tokens
    opts.device = _lib.DEVICE_CUDA if device == "cuda" else _lib.DEVICE_CPU
    result = _lib.EvalResult()
    with _Tokenizer(model.path) as tok:
        _call(lib.ktq_eval_perplexity, ctypes.byref(result), model._handle(), tok.handle, data, len(data),
              ctypes.byref(opts))
    return {"perplexity": result.perplexity, "mean_nll": result.mean_nll, "tokens_scored": result.tokens_scored,
            "windows": result.windows}
