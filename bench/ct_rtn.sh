#!/usr/bin/env bash
# Benchmark: `ktq convert --to compressed-tensors` (RTN W4A16) against
# llm-compressor's RTN on the same synthetic BF16 MoE checkpoint (Qwen3-30B-A3B
# expert shapes, 4 layers, ~4.9 GB), same machine, plus the I/O floor
# measured in the same run:
#   floor = read the input (cat > /dev/null) + write ktq's output bytes (dd, fsynced)
# Runs ktq on the CPU and, when the library has CUDA and a device is there,
# with --device cuda. Prints wall times, ratios, peak RSS, and whether
# llm-compressor's tensors are byte-identical to ktq's.
#
# usage: bench/ct_rtn.sh WORK [THREADS]
#   LLMC_PYTHON=/path/to/python (with torch, transformers, llmcompressor) enables the llm-compressor run;
#   LLMC_DEVICE=cuda runs it on the GPU (default cpu).
#   KTQ_ARGS="--observer mse" adds options to both ktq runs (word-split; the
#   llm-compressor run and its byte comparison stay min-max).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$1 threads=${2:-$(nproc)}
ktq=${KTQ_BIN:-$root/build/ktq}
mkdir -p "$work"
model=$work/synthetic-qwen3
[ -f "$model/config.json" ] || python3 "$root/bench/make_synthetic_bf16_moe.py" "$model" --hidden 2048 \
  --moe-intermediate 768 --experts 128 --layers 4
in_bytes=$(du -cb "$model"/*.safetensors | tail -1 | cut -f1)
now() { date +%s.%N; }
timed() { python3 -c 'import resource, subprocess, sys, time
t = time.monotonic(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"; }

cat "$model"/*.safetensors > /dev/null; sync
rm -rf "$work/ktq"; sync
read -r ktq_s ktq_rss < <(timed "$ktq" convert "$model" "$work/ktq" --to compressed-tensors --scheme W4A16 \
                          --threads "$threads" ${KTQ_ARGS:-} --quiet)
out_bytes=$(du -cb "$work"/ktq/*.safetensors | tail -1 | cut -f1)
cuda_s=0 cuda_same=n/a
if "$ktq" doctor 2>/dev/null | grep -q '^cuda.*device'; then
  rm -rf "$work/ktq-cuda"; sync
  if read -r cuda_s _ < <(timed "$ktq" convert "$model" "$work/ktq-cuda" --to compressed-tensors --scheme W4A16 \
                          --threads "$threads" --device cuda ${KTQ_ARGS:-} --quiet); then
    cuda_same=yes
    for f in "$work"/ktq/*.safetensors; do cmp -s "$f" "$work/ktq-cuda/$(basename "$f")" || cuda_same="no ($(basename "$f"))"; done
  fi
  rm -rf "$work/ktq-cuda"
fi
sync; t0=$(now); cat "$model"/*.safetensors > /dev/null; t1=$(now)
mkdir -p "$work/floor"; sync; t2=$(now)
for f in "$work"/ktq/*.safetensors; do dd if="$f" of="$work/floor/$(basename "$f")" bs=16M conv=fsync status=none; done
t3=$(now); rm -rf "$work/floor"
read_s=$(awk "BEGIN{print $t1 - $t0}"); write_s=$(awk "BEGIN{print $t3 - $t2}")

llmc_s=0 llmc_rss=0 identical=unknown
if [ -n "${LLMC_PYTHON:-}" ]; then
  rm -rf "$work/llmc"; sync
  if read -r llmc_s llmc_rss < <(timed "$LLMC_PYTHON" "$root/bench/llmc_rtn.py" "$model" "$work/llmc" W4A16 \
                                 --device "${LLMC_DEVICE:-cpu}"); then
    identical=$(python3 - "$work/ktq" "$work/llmc" <<'PY'
import hashlib, json, os, struct, sys
def tensors(d):
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            with open(os.path.join(d, f), "rb") as fh:
                n = struct.unpack("<Q", fh.read(8))[0]; h = json.loads(fh.read(n))
                for k, v in h.items():
                    if k != "__metadata__":
                        a, b = v["data_offsets"]; fh.seek(8 + n + a)
                        out[k] = (v["dtype"], v["shape"], hashlib.sha256(fh.read(b - a)).hexdigest())
    return out
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
bad = [k for k in b if a.get(k) != b[k]]
print("yes" if a.keys() == b.keys() and not bad else f"no ({len(bad)} of {len(b)} differ)")
PY
)
  else
    echo "llm-compressor failed"
  fi
  rm -rf "$work/llmc"
fi
python3 - "$in_bytes" "$out_bytes" "$ktq_s" "$ktq_rss" "$read_s" "$write_s" "$llmc_s" "$llmc_rss" "$identical" \
  "$threads" "$cuda_s" "$cuda_same" "${LLMC_DEVICE:-cpu}" <<'PY'
import sys
in_b, out_b, ktq_s, ktq_rss, read_s, write_s, llmc_s, llmc_rss, identical, threads, cuda_s, cuda_same, llmc_dev = sys.argv[1:]
in_b, out_b = int(in_b), int(out_b)
ktq_s, read_s, write_s, llmc_s, cuda_s = map(float, (ktq_s, read_s, write_s, llmc_s, cuda_s))
ktq_rss, llmc_rss = int(ktq_rss) * 1024, int(float(llmc_rss)) * 1024
GB, MiB = 1e9, 2**20
print(f"== compressed-tensors W4A16 RTN, {threads} threads, synthetic Qwen3-30B-A3B shapes: "
      f"{in_b/GB:.2f} GB BF16 in, {out_b/GB:.2f} GB out")
print(f"ktq (cpu)       {ktq_s:7.2f} s  {in_b/GB/ktq_s:6.2f} GB/s  peak RSS {ktq_rss/MiB:8.0f} MiB")
if cuda_s > 0:
    print(f"ktq (cuda)      {cuda_s:7.2f} s  {in_b/GB/cuda_s:6.2f} GB/s  bytes == cpu: {cuda_same}")
floor = read_s + write_s
print(f"I/O floor       {floor:7.2f} s  (read {read_s:.2f} s + write {write_s:.2f} s)  "
      f"-> ktq / floor speed ratio {floor/ktq_s:.2f} (target >= 0.7)")
if llmc_s > 0:
    print(f"llm-compressor  {llmc_s:7.2f} s  {in_b/GB/llmc_s:6.2f} GB/s  peak RSS {llmc_rss/MiB:8.0f} MiB ({llmc_dev})")
    print(f"speed-up        {llmc_s/ktq_s:.1f}x cpu (target >= 20x)"
          + (f", {llmc_s/cuda_s:.1f}x cuda" if cuda_s > 0 else "") + f"; tensors byte-identical: {identical}")
PY
