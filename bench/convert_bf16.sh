#!/usr/bin/env bash
# Benchmark: `ktq convert --to bf16` on a synthetic block-FP8 MoE checkpoint
# (>= 4 GB) against the I/O floor measured in the same run on the same disk:
#   floor = time to read the input (cat > /dev/null)
#         + time to write the bytes ktq wrote (dd of its output shards, fsynced).
# Prints throughput (input GB/s), the ratio floor_time / ktq_time (1.0 = as
# fast as the disk allows; target >= 0.7) and ktq's peak RSS from getrusage (target <=
# 1 GiB + one tensor). The input stays in the page cache for both, as it
# would for a user converting a freshly downloaded model.
#
# usage: bench/convert_bf16.sh [WORK_DIR] [LAYERS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$root/build/bench}
layers=${2:-14}
ktq=${KTQ_BIN:-$root/build/ktq}
mkdir -p "$work"
model=$work/synthetic-fp8
if [ ! -f "$model/config.json" ] || [ "$(python3 -c "import json;print(json.load(open('$model/config.json'))['num_hidden_layers'])")" != "$layers" ]; then
  rm -rf "$model"
  python3 "$root/bench/make_synthetic_fp8.py" "$model" --layers "$layers"
fi
in_bytes=$(du -cb "$model"/*.safetensors | tail -1 | cut -f1)
out_bytes=$("$ktq" inspect "$model" --plan --json | python3 -c "import json,sys;print(json.load(sys.stdin)['plan']['bf16']['output_bytes'])")
largest=$("$ktq" inspect "$model" --tensors --json | python3 -c "import json,sys;print(max(t['bytes'] for t in json.load(sys.stdin)['tensors']))")

now() { date +%s.%N; }
cat "$model"/*.safetensors > /dev/null  # warm the page cache once
sync  # nothing dirty from generating the model may flush during a timed step

# Each figure is the best of two runs; `sync` before each timed step.
best() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }
ktq_runs=() read_runs=() write_runs=() rss_kb=0
for run in 1 2; do
  rm -rf "$work/out" "$work/floor"; sync
  t0=$(now)
  # Peak RSS of the child from getrusage (what GNU time -v reports), in KiB.
  rss=$(python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$ktq" convert "$model" "$work/out" --to bf16 --quiet)
  t1=$(now)
  [ "$rss" -gt "$rss_kb" ] && rss_kb=$rss
  ktq_runs+=("$(awk "BEGIN{print $t1 - $t0}")")
  sync
  t2=$(now); cat "$model"/*.safetensors > /dev/null; t3=$(now)
  read_runs+=("$(awk "BEGIN{print $t3 - $t2}")")
  # The write floor: the very bytes ktq wrote, copied sequentially with fsync.
  mkdir -p "$work/floor"; sync
  t4=$(now)
  for f in "$work"/out/*.safetensors; do dd if="$f" of="$work/floor/$(basename "$f")" bs=16M conv=fsync status=none; done
  t5=$(now)
  write_runs+=("$(awk "BEGIN{print $t5 - $t4}")")
done
rm -rf "$work/out" "$work/floor"
ktq_s=$(best "${ktq_runs[@]}"); read_s=$(best "${read_runs[@]}"); write_s=$(best "${write_runs[@]}")

python3 - "$in_bytes" "$out_bytes" "$largest" "$rss_kb" "$read_s" "$write_s" "$ktq_s" "$(nproc)" <<'PY'
import sys
in_b, out_b, largest, rss_kb = (int(x) for x in sys.argv[1:5])
read_s, write_s, ktq_s = (float(x) for x in sys.argv[5:8])
floor_s = read_s + write_s
rss = rss_kb * 1024
print(f"input  {in_b / 1e9:.2f} GB (FP8 + scales), output {out_b / 1e9:.2f} GB (BF16), cores {sys.argv[8]}")
print(f"I/O floor (best of 2 each): read {read_s:.2f} s + write {write_s:.2f} s = {floor_s:.2f} s  ({in_b / 1e9 / floor_s:.2f} GB/s of input)")
print(f"ktq convert --to bf16 (best of 2): {ktq_s:.2f} s  ({in_b / 1e9 / ktq_s:.2f} GB/s of input)")
print(f"ratio floor/ktq = {floor_s / ktq_s:.2f}  (target >= 0.70)")
print(f"peak RSS {rss / 2**20:.0f} MiB; largest tensor {largest / 2**20:.1f} MiB; "
      f"target <= 1 GiB + one tensor = {(2**30 + largest) / 2**20:.0f} MiB -> {'ok' if rss <= 2**30 + largest else 'OVER'}")
PY
