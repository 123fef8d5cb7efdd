"""The Python API end to end on the demo model shipped in the repository."""
import os
import shutil
import struct
import subprocess
import sys
import threading

import pytest

import ktq

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEMO = os.path.join(REPO, "examples", "models", "tiny-deepseek-v3-fp8")


def test_describes_the_demo_model():
    with ktq.Model(DEMO) as m:
        info = m.info()
        assert (info["architecture"], info["family"]) == ("DeepseekV3ForCausalLM", "deepseek_v3")
        assert (info["num_layers"], info["num_experts"], info["experts_per_token"]) == (3, 16, 4)
        assert (info["first_dense_layers"], info["num_shared_experts"]) == (1, 1)
        assert info["source_dtype"] == "F8_E4M3" and info["fp8_block_size"] == (128, 128)
        assert len(m.tensors()) == 256
        t = m.tensor("model.layers.1.mlp.experts.3.down_proj.weight")
        assert (t["dtype"], t["shape"], t["layer"]) == ("F8_E4M3", [256, 256], 1)
    assert ktq.version().startswith("0.")


def test_conversion_matches_the_reader_and_the_cli(tmp_path):
    seen = []
    with ktq.Model(DEMO) as m:
        ktq.convert(m, tmp_path / "py", threads=2, progress=lambda p: seen.append(p["bytes_done"]))
        with ktq.Model(tmp_path / "py") as out:
            assert out.info()["source_dtype"] == "BF16"
            for t in out.tensors():
                assert out.read_tensor(t["name"], "bf16") == m.read_tensor(t["name"], "bf16"), t["name"]
    assert seen == sorted(seen) and len(seen) > 10
    ktq_bin = os.environ.get("KTQ_BIN")
    if ktq_bin:  # the same conversion through the CLI gives the same files
        subprocess.run([ktq_bin, "convert", DEMO, str(tmp_path / "cli"), "--quiet"], check=True)
        for name in sorted(os.listdir(tmp_path / "cli")):
            assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "py" / name).read_bytes(), name


def test_cancel_leaves_nothing(tmp_path):
    calls = []
    with ktq.Model(DEMO) as m:
        with pytest.raises(ktq.KtqError) as e:
            ktq.convert(m, tmp_path / "out", progress=lambda p: calls.append(1) or len(calls) < 5)
    assert e.value.status == "cancelled" and len(calls) == 5
    assert os.listdir(tmp_path / "out") == []


def test_exception_in_progress_cancels_and_propagates(tmp_path):
    def boom(_):
        raise RuntimeError("stop here")
    with ktq.Model(DEMO) as m:
        with pytest.raises(RuntimeError, match="stop here"):
            ktq.convert(m, tmp_path / "out", progress=boom)
    assert os.listdir(tmp_path / "out") == []


def test_bad_path_and_closed_handle():
    with pytest.raises(ktq.KtqError) as e:
        ktq.Model("/nonexistent/ktq-model")
    assert e.value.status == "not_found" and "/nonexistent/ktq-model" in str(e.value)
    m = ktq.Model(DEMO)
    m.close()
    m.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        m.info()
    with pytest.raises(ktq.KtqError) as e:
        with ktq.Model(DEMO) as m2:
            m2.read_tensor("no.such.tensor")
    assert e.value.status == "not_found"


def test_one_model_many_threads():
    with ktq.Model(DEMO) as m:
        ref = m.read_tensor("model.layers.1.mlp.experts.0.gate_proj.weight")
        errors = []

        def work():
            for _ in range(10):
                if m.read_tensor("model.layers.1.mlp.experts.0.gate_proj.weight") != ref:
                    errors.append("mismatch")
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors


def test_convert_cpu_weights_entry_point_matches_the_cli(tmp_path):
    """kt-kernel's converter flags through Python give the CLI's bytes."""
    from ktq import convert_cpu_weights

    assert convert_cpu_weights.main(["--input-path", DEMO, "--input-type", "fp8", "--output", str(tmp_path / "py"),
                                     "--quant-method", "int8", "--threadpool-count", "2", "--cpuinfer-threads", "2",
                                     "--no-merge-safetensor"]) == 0
    files = sorted(str(p.relative_to(tmp_path / "py")) for p in (tmp_path / "py").rglob("*.kt"))
    assert len(files) == 2 * 16 * 3 * 2 * 2 and files[0].startswith("_layer_1/_numa_0/INT8_")
    assert convert_cpu_weights.main(["-i", DEMO, "--input-type", "bf16", "-o", str(tmp_path / "bad")]) == 1
    assert convert_cpu_weights.main(["-i", DEMO, "--input-type", "fp8", "-o", str(tmp_path / "x"),
                                     "--quant-method", "moe_int4"]) == 2
    ktq_bin = os.environ.get("KTQ_BIN")
    if ktq_bin:
        subprocess.run([ktq_bin, "convert", DEMO, str(tmp_path / "cli"), "--format", "kt", "--quant-method", "int8",
                        "--no-merge-safetensor", "--quiet"], check=True)
        for name in files:
            assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "py" / name).read_bytes(), name


def test_compressed_tensors_matches_the_cli(tmp_path):
    with ktq.Model(DEMO) as m:
        ktq.convert(m, tmp_path / "py", to="W8A16", group_size=-1, ignore=["lm_head", r"re:.*self_attn.*"], threads=2)
    cfg = (tmp_path / "py" / "config.json").read_text()
    assert '"quant_method": "compressed-tensors"' in cfg and '"strategy": "channel"' in cfg
    ktq_bin = os.environ.get("KTQ_BIN")
    if ktq_bin:
        subprocess.run([ktq_bin, "convert", DEMO, str(tmp_path / "cli"), "--to", "compressed-tensors", "--scheme", "W8A16",
                        "--group-size", "-1", "--ignore", "lm_head", "re:.*self_attn.*", "--quiet"], check=True)
        for name in sorted(os.listdir(tmp_path / "cli")):
            assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "py" / name).read_bytes(), name
    with pytest.raises(ValueError):
        with ktq.Model(DEMO) as m:
            ktq.convert(m, tmp_path / "bad", to="W4A16", device="tpu")


def test_mse_observer_matches_the_cli(tmp_path):
    """observer="mse" (writer options version 7) gives the CLI's --observer mse bytes, which differ from min-max."""
    with ktq.Model(DEMO) as m:
        ktq.convert(m, tmp_path / "mse", to="W4A16", observer="mse", threads=2)
        ktq.convert(m, tmp_path / "minmax", to="W4A16", threads=2)
        with pytest.raises(ValueError):
            ktq.convert(m, tmp_path / "bad", to="W4A16", observer="max")
        # AWQ keeps the min-max observer: refused before any calibration, nothing written under the final name.
        calib = tmp_path / "calib.txt"
        calib.write_text(open(os.path.join(REPO, "README.md"), encoding="utf-8").read() * 4, encoding="utf-8")
        with pytest.raises(ktq.KtqError) as e:
            ktq.convert(m, tmp_path / "awq", to="W4A16", engine="awq", dataset=calib, num_calibration_samples=4,
                        max_sequence_length=64, observer="mse")
        assert "MSE observer" in str(e.value) and not (tmp_path / "awq" / "config.json").exists()
    shard = "model.safetensors"
    assert (tmp_path / "mse" / shard).read_bytes() != (tmp_path / "minmax" / shard).read_bytes()
    assert '"observer": "memoryless_mse"' in (tmp_path / "mse" / "config.json").read_text()
    ktq_bin = os.environ.get("KTQ_BIN")
    if ktq_bin:
        subprocess.run([ktq_bin, "convert", DEMO, str(tmp_path / "cli"), "--to", "compressed-tensors", "--observer", "mse",
                        "--quiet"], check=True)
        for name in sorted(os.listdir(tmp_path / "cli")):
            assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "mse" / name).read_bytes(), name


def test_convert_gpu_weights_entry_point_matches_the_cli(tmp_path):
    """kt-kernel's convert_gpu_weights.py flags through Python give the CLI's bytes."""
    from ktq import convert_gpu_weights

    args = ["--model_id", DEMO, "--quant_method", "RTN", "--quant_type", "W4A16", "--ignore_patterns", "lm_head"]
    assert convert_gpu_weights.main(args + ["--output_dir", str(tmp_path / "py")]) == 0
    # GPTQ (the default method) needs a local --dataset
    assert convert_gpu_weights.main(["--model_id", DEMO, "--output_dir", str(tmp_path / "g")]) == 2
    ktq_bin = os.environ.get("KTQ_BIN")
    if ktq_bin:
        subprocess.run([ktq_bin, "convert-gpu-weights", *args, "--output_dir", str(tmp_path / "cli"), "--quiet"],
                       check=True)
        for name in sorted(os.listdir(tmp_path / "cli")):
            assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "py" / name).read_bytes(), name


def test_gguf_matches_the_cli(tmp_path):
    """A GGUF file through Python has the CLI's bytes: the demo model
    (DeepSeek-V3 from FP8, llama.cpp's deepseek2) and, with the shared
    models, tiny-llama in a type, a mixture and llama-quantize's Q4_0."""
    with ktq.Model(DEMO) as m:
        ktq.convert(m, tmp_path / "d.gguf", to="gguf", gguf_type="Q4_K_M")
    ktq_bin = os.environ.get("KTQ_BIN")
    if ktq_bin:
        subprocess.run([ktq_bin, "convert", DEMO, str(tmp_path / "d-cli.gguf"), "--to", "gguf", "--type", "Q4_K_M",
                        "-q"], check=True)
        assert (tmp_path / "d-cli.gguf").read_bytes() == (tmp_path / "d.gguf").read_bytes()
    shared = os.environ.get("KTQ_SHARED_DIR", os.path.join(REPO, "..", "shared"))
    llama = os.path.join(shared, "models", "tiny-llama")
    if not os.path.isdir(llama):
        pytest.skip("shared tiny-llama not found")
    with ktq.Model(llama) as m:
        ktq.convert(m, tmp_path / "py.gguf", to="gguf", gguf_type="Q4_K")
        ktq.convert(m, tmp_path / "py-mix.gguf", to="gguf", gguf_type="Q4_K_M")
        ktq.convert(m, tmp_path / "py-mix0.gguf", to="gguf", gguf_mix="Q4_0")
        ktq.convert(m, tmp_path / "py-pre.gguf", to="gguf", gguf_tokenizer_pre="llama-bpe")
        name = b"llama-bpe"
        assert struct.pack("<Q", len(name)) + name in (tmp_path / "py-pre.gguf").read_bytes()
        with pytest.raises(ktq.KtqError) as e:
            ktq.convert(m, tmp_path / "bad.gguf", to="gguf", gguf_type="Q9")
        assert "unknown GGUF mixture 'Q9'" in str(e.value)
    ktq_bin = os.environ.get("KTQ_BIN")
    if ktq_bin:
        for py, args in (("py.gguf", ["--type", "Q4_K"]), ("py-mix.gguf", ["--type", "Q4_K_M"]),
                         ("py-mix0.gguf", ["--mix", "Q4_0"])):
            subprocess.run([ktq_bin, "convert", llama, str(tmp_path / "cli.gguf"), "--to", "gguf", *args, "-q",
                            "--overwrite"], check=True)
            assert (tmp_path / "cli.gguf").read_bytes() == (tmp_path / py).read_bytes(), args


def test_perplexity_and_tokenizer():
    """The native forward pass through Python: perplexity of the demo model on its own
    README-sized text agrees with the CLI; token ids agree with `ktq tokenize`."""
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read() * 3
    ids = ktq.tokenize(DEMO, text)
    assert len(ids) > 512 and all(0 <= i < 4096 for i in ids)
    assert ktq.tokenize(DEMO, "") == []
    with ktq.Model(DEMO) as m:
        r = ktq.perplexity(m, text, window=128, max_tokens=512)
    assert r["windows"] == 4 and r["tokens_scored"] == 4 * 127 and 1 < r["perplexity"] < 4096
    ktq_bin = os.environ.get("KTQ_BIN")
    if ktq_bin:
        path = os.path.join(os.path.dirname(__file__), "_ppl_text.txt")
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            out = subprocess.run([ktq_bin, "eval-ppl", DEMO, "--text", path, "--window", "128", "--max-tokens", "512",
                                  "--json", "-q"], check=True, capture_output=True, text=True).stdout
            ids_cli = subprocess.run([ktq_bin, "tokenize", DEMO, path, "--print"], check=True, capture_output=True,
                                     text=True).stdout.split()
        finally:
            os.unlink(path)
        import json
        assert json.loads(out)["perplexity"] == r["perplexity"]
        assert list(map(int, ids_cli)) == ids


@pytest.mark.parametrize("engine", ["gptq", "awq"])
def test_calibration_host_memory_limit(engine, tmp_path):
    """max_cpu_memory reaches the engine: a layer that needs more stops before anything of it is written."""
    calib = tmp_path / "calib.txt"
    calib.write_text(open(os.path.join(REPO, "README.md"), encoding="utf-8").read() * 4, encoding="utf-8")
    with ktq.Model(DEMO) as m, pytest.raises(ktq.KtqError) as e:
        ktq.convert(m, tmp_path / "small", to="W4A16", engine=engine, dataset=calib, num_calibration_samples=4,
                    max_sequence_length=128, threads=2, max_cpu_memory=1 << 20)
    assert e.value.status == "no_memory", e.value
    assert f"{engine.upper()} needs about" in str(e.value) and "limit is 1 MiB" in str(e.value), e.value
    assert "host memory for layer 0" in str(e.value), e.value  # checked before layer 0 runs


def test_gptq_matches_the_cli(tmp_path):
    calib = tmp_path / "calib.txt"
    calib.write_text(open(os.path.join(REPO, "README.md"), encoding="utf-8").read() * 4, encoding="utf-8")
    with ktq.Model(DEMO) as m:
        ktq.convert(m, tmp_path / "py", to="W4A16", engine="gptq", dataset=calib, num_calibration_samples=4,
                    max_sequence_length=128, threads=2)
        with pytest.raises(ValueError):
            ktq.convert(m, tmp_path / "bad", to="W4A16", engine="gptq")
    assert (tmp_path / "py" / "gptq_report.json").exists()
    ktq_bin = os.environ.get("KTQ_BIN")
    if ktq_bin:
        subprocess.run([ktq_bin, "convert", DEMO, str(tmp_path / "cli"), "--to", "compressed-tensors", "--engine", "gptq",
                        "--dataset", str(calib), "--num-calibration-samples", "4", "--max-sequence-length", "128",
                        "--quiet"], check=True)
        for name in sorted(os.listdir(tmp_path / "cli")):
            assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "py" / name).read_bytes(), name


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed (tests/setup_deps.sh installs it)")
def test_no_sync_reaches_the_library(tmp_path):
    """no_sync=True (writer options version 6): convert() and kt_merge() fsync no weight file, and write the
    bytes of a synced run."""
    script = (
        "import sys, ktq\n"
        "with ktq.Model(sys.argv[1]) as m:\n"
        "    ns = sys.argv[3] == '1'\n"
        "    ktq.convert(m, sys.argv[2] + '/loose', to='kt-int4', loose_files=True, threads=2, no_sync=ns)\n"
        "    ktq.kt_merge(sys.argv[2] + '/merged', sys.argv[2] + '/loose', model=m, no_sync=ns)\n")
    synced = {}
    for ns in ("0", "1"):
        out, log = tmp_path / f"run{ns}", tmp_path / f"run{ns}.strace"
        out.mkdir()
        subprocess.run(["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync,syncfs", "-o", str(log),
                        sys.executable, "-c", script, DEMO, str(out), ns], check=True)
        synced[ns] = [line for line in log.read_text().splitlines()
                      if "resumed>" not in line and ("syncfs" in line or ".kt>" in line or ".safetensors.ktq-partial>" in line)]
    assert synced["0"], "a default run syncs its weight files"
    assert not synced["1"], synced["1"]
    files = lambda d: {str(f.relative_to(d)): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()}
    assert files(tmp_path / "run1") == files(tmp_path / "run0")
