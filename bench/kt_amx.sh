#!/usr/bin/env bash
# Benchmark: `ktq convert --format kt` against kt-kernel's own converter
# (convert_cpu_weights.py, driving its C++ AMX operator) on the same
# synthetic BF16 MoE checkpoint, same machine, same thread count, plus the
# I/O floor measured in the same run:
#   floor = read the input (cat > /dev/null) + write ktq's output bytes (dd, fsynced)
# Prints wall times, throughput ratios and peak RSS (getrusage of the child),
# and whether the two outputs are byte-identical file by file.
#
# usage: bench/kt_amx.sh WORK SHAPE [THREADS]
#   SHAPE: dsv3   (hidden 7168, moe_intermediate 2048, 32 experts, 3 layers, ~8.5 GB BF16)
#          qwen3  (Qwen3-30B-A3B experts: hidden 2048, moe_intermediate 768, 128 experts, 4 layers, ~4.8 GB)
#   KT_CONVERT=path/to/convert_cpu_weights.py enables the kt-kernel run
#   (kt_kernel importable by python3; the script is not part of ktq).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$1 shape=$2 threads=${3:-$(nproc)}
ktq=${KTQ_BIN:-$root/build/ktq}
case $shape in
  dsv3) dims=(--hidden 7168 --moe-intermediate 2048 --experts 32 --layers 3) ;;
  qwen3) dims=(--hidden 2048 --moe-intermediate 768 --experts 128 --layers 4) ;;
  *) echo "unknown shape $shape"; exit 2 ;;
esac
mkdir -p "$work"
model=$work/synthetic-$shape
[ -f "$model/config.json" ] || python3 "$root/bench/make_synthetic_bf16_moe.py" "$model" "${dims[@]}"
in_bytes=$(du -cb "$model"/*.safetensors | tail -1 | cut -f1)
layer_experts=$(python3 -c "
import json; c=json.load(open('$model/config.json')); print(3*c['num_experts']*c['hidden_size']*c['moe_intermediate_size']*2)")
now() { date +%s.%N; }
# Runs a command, prints "seconds peak_rss_kib".
timed() { python3 -c 'import resource, subprocess, sys, time
t = time.monotonic(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"; }

cat "$model"/*.safetensors > /dev/null; sync
rm -rf "$work/ktq"; sync
read -r ktq_s ktq_rss < <(timed "$ktq" convert "$model" "$work/ktq" --format kt --quant-method int4 \
                          --threadpool-count 2 --threads "$threads" --quiet)
out_bytes=$(du -cb "$work"/ktq/*.safetensors | tail -1 | cut -f1)
# The same without any fsync of the weight files (--no-sync): kt-kernel's converter syncs nothing.
rm -rf "$work/ktq-nosync"; sync
read -r nosync_s nosync_rss < <(timed "$ktq" convert "$model" "$work/ktq-nosync" --format kt --quant-method int4 \
                                --threadpool-count 2 --threads "$threads" --quiet --no-sync)
for f in "$work"/ktq/*.safetensors; do cmp -s "$f" "$work/ktq-nosync/$(basename "$f")" || echo "--no-sync output differs: $f"; done
rm -rf "$work/ktq-nosync"; sync
sync; t0=$(now); cat "$model"/*.safetensors > /dev/null; t1=$(now)
mkdir -p "$work/floor"; sync; t2=$(now)
for f in "$work"/ktq/*.safetensors; do dd if="$f" of="$work/floor/$(basename "$f")" bs=16M conv=fsync status=none; done
t3=$(now); rm -rf "$work/floor"
read_s=$(awk "BEGIN{print $t1 - $t0}"); write_s=$(awk "BEGIN{print $t3 - $t2}")

kt_s=0 kt_rss=0 identical=unknown
if [ -n "${KT_CONVERT:-}" ]; then
  rm -rf "$work/kt"; sync
  if read -r kt_s kt_rss < <(timed python3 "$KT_CONVERT" --input-path "$model" --input-type bf16 --output "$work/kt" \
                             --quant-method int4 --cpuinfer-threads "$threads" --threadpool-count 2); then
    identical=yes
    for f in "$work"/kt/*.safetensors; do cmp -s "$f" "$work/ktq/$(basename "$f")" || identical="no ($(basename "$f"))"; done
    [ "$(ls "$work"/kt/*.safetensors | wc -l)" = "$(ls "$work"/ktq/*.safetensors | wc -l)" ] || identical="no (file count)"
  else
    echo "kt-kernel's converter failed"
  fi
fi
python3 - "$shape" "$in_bytes" "$out_bytes" "$layer_experts" "$ktq_s" "$ktq_rss" "$read_s" "$write_s" "$kt_s" "$kt_rss" "$identical" "$threads" "$nosync_s" <<'PY'
import sys
shape, in_b, out_b, layer, ktq_s, ktq_rss, read_s, write_s, kt_s, kt_rss, identical, threads, nosync_s = sys.argv[1:]
nosync_s = float(nosync_s)
in_b, out_b, layer = int(in_b), int(out_b), int(layer)
ktq_s, read_s, write_s, kt_s = float(ktq_s), float(read_s), float(write_s), float(kt_s)
ktq_rss, kt_rss = int(ktq_rss) * 1024, int(float(kt_rss)) * 1024
GB, MiB = 1e9, 2**20
print(f"== kt INT4, 2 NUMA parts, {threads} threads, synthetic {shape}: {in_b/GB:.2f} GB BF16 in, {out_b/GB:.2f} GB out")
print(f"ktq          {ktq_s:7.2f} s  {in_b/GB/ktq_s:6.2f} GB/s  peak RSS {ktq_rss/MiB:8.0f} MiB")
print(f"ktq no-sync  {nosync_s:7.2f} s  {in_b/GB/nosync_s:6.2f} GB/s  (--no-sync: the weight files never fsynced, as kt-kernel)")
floor = read_s + write_s
print(f"I/O floor    {floor:7.2f} s  (read {read_s:.2f} s + write {write_s:.2f} s)  -> ktq / floor speed ratio {floor/ktq_s:.2f} (target >= 0.7)")
target = 2 * layer + 512 * MiB
print(f"RSS target   {target/MiB:8.0f} MiB (2 x one layer's experts {layer/MiB:.0f} MiB + 512 MiB): {'met' if ktq_rss <= target else 'MISSED'}")
if kt_s > 0:
    print(f"kt-kernel    {kt_s:7.2f} s  {in_b/GB/kt_s:6.2f} GB/s  peak RSS {kt_rss/MiB:8.0f} MiB")
    print(f"speed-up     {kt_s/ktq_s:.1f}x (target >= 10x), {kt_s/nosync_s:.1f}x with --no-sync (same durability); "
          f"outputs byte-identical: {identical}")
PY
