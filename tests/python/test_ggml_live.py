"""ktq's ggml block quantizers against gguf-py live, on fresh random data of
several distributions (the golden vectors in tests/golden are fixed; this
keeps trying new inputs). Calls libktq's C API through ctypes."""
import ctypes
import os

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf.quants import quantize  # noqa: E402

LIB = os.environ.get("KTQ_LIB")
TYPES = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]


@pytest.fixture(scope="module")
def lib():
    if not LIB:
        pytest.skip("KTQ_LIB (path of libktq.so) not set")
    lib = ctypes.CDLL(LIB)
    lib.ktq_quantize_tensor.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                                        ctypes.c_int, ctypes.c_void_p]
    lib.ktq_ggml_type_size.restype = ctypes.c_size_t
    lib.ktq_ggml_block_size.restype = ctypes.c_size_t
    return lib


@pytest.mark.parametrize("name", TYPES)
def test_same_bytes_as_gguf_py(lib, name):
    qtype = getattr(T, name)
    rng = np.random.default_rng(sum(map(ord, name)))  # fixed per type: failures reproduce
    for scale in (1e-3, 0.02, 1.0, 300.0):
        x = (rng.standard_normal(32 * 512) * scale * rng.uniform(0.1, 3.0, size=32 * 512)).astype(np.float32)
        want = quantize(x, qtype).tobytes()
        out = ctypes.create_string_buffer(len(x) // lib.ktq_ggml_block_size(int(qtype)) * lib.ktq_ggml_type_size(int(qtype)))
        assert lib.ktq_quantize_tensor(out, len(out), x.ctypes.data, x.size, int(qtype), None) == 0
        got = out.raw
        assert len(got) == len(want)
        if got != want:
            i = next(i for i in range(len(got)) if got[i] != want[i])
            pytest.fail(f"{name} scale {scale}: first difference at byte {i}")


@pytest.mark.parametrize("name", ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"])
def test_kquant_blocks_read_back_by_gguf_py(lib, name):
    """gguf-py (llama.cpp's Python reader) dequantizes ktq's K-quant blocks
    to ktq's own floats, and they sit within the type's error of the input."""
    from gguf.quants import dequantize

    qtype = getattr(T, name)
    lib.ktq_dequantize_tensor.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                                          ctypes.c_int, ctypes.c_void_p]
    rng = np.random.default_rng(sum(map(ord, name)))
    x = (rng.standard_normal(256 * 256) * 0.02).astype(np.float32)
    out = ctypes.create_string_buffer(len(x) // 256 * lib.ktq_ggml_type_size(int(qtype)))
    assert lib.ktq_quantize_tensor(out, len(out), x.ctypes.data, x.size, int(qtype), None) == 0
    theirs = dequantize(np.frombuffer(out.raw, np.uint8), qtype).astype(np.float32).ravel()
    ours = np.zeros_like(x)
    assert lib.ktq_dequantize_tensor(ours.ctypes.data, ours.size, out, len(out), int(qtype), None) == 0
    assert np.array_equal(theirs, ours)
    rel = np.sqrt(np.mean((ours - x) ** 2)) / np.sqrt(np.mean(x ** 2))
    bound = {"Q2_K": 0.5, "Q3_K": 0.25, "Q4_K": 0.12, "Q5_K": 0.06, "Q6_K": 0.03}[name]
    assert rel < bound, (name, rel)
