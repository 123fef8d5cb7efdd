#!/usr/bin/env bash
# GPTQ and the calibration forward pass: ktq vs llm-compressor 0.14 and
# transformers, same machine, same run, same thread count (torch set to the
# same number of threads), CPU.
#   1. GPTQ W4A16 g128 of a shared model: `ktq convert --engine gptq` vs
#      llm-compressor's GPTQModifier on the very same calibration samples,
#      ignore list and options (tests/interop/llmcompressor_gptq.py); wall
#      time ratio, and the perplexity of both outputs (ktq eval-ppl reads
#      both) so the speed is compared at equal-or-better quality.
#   2. Forward tokens/s: `ktq eval-ppl` vs transformers (bf16 autocast,
#      tests/interop/transformers_ppl.py) on the same 131,072 tokens.
# usage: KTQ_BIN=build/ktq PYTHON=/path/to/venv/python bench/gptq_calibration.sh [SHARED] [MODEL] [SAMPLES] [SEQ_LEN]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
python=${PYTHON:-python3}
shared=${1:-$here/../../shared}
model=${2:-tiny-qwen3-moe}
samples=${3:-128}
seqlen=${4:-512}
threads=${THREADS:-$(nproc)}
src=$shared/models/$model
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=$threads
now() { date +%s.%N; }
ratio() { "$python" -c "print(f'{$1 / $2:.2f}')"; }
echo "model $model, $samples x $seqlen calibration tokens, $threads threads"

t0=$(now)
"$ktq" convert "$src" "$work/ktq" --to compressed-tensors --engine gptq --dataset "$shared/data/calib.txt" \
  --num-calibration-samples "$samples" --max-sequence-length "$seqlen" --threads "$threads" --quiet
t1=$(now)
"$python" "$here/../tests/interop/llmcompressor_gptq.py" "$src" "$work/lc" --dataset "$shared/data/calib.txt" \
  --ignore-from "$work/ktq/config.json" --samples "$samples" --seq-len "$seqlen" > "$work/lc.log" 2>&1 \
  || { tail -20 "$work/lc.log"; exit 1; }
t2=$(now)
ktq_s=$("$python" -c "print(f'{$t1 - $t0:.1f}')"); lc_s=$("$python" -c "print(f'{$t2 - $t1:.1f}')")
ppl_ktq=$("$ktq" eval-ppl "$work/ktq" --text "$shared/data/eval.txt" --threads "$threads" --json -q | "$python" -c "import json,sys; print(round(json.load(sys.stdin)['perplexity'], 3))")
ppl_lc=$("$ktq" eval-ppl "$work/lc" --text "$shared/data/eval.txt" --threads "$threads" --json -q | "$python" -c "import json,sys; print(round(json.load(sys.stdin)['perplexity'], 3))")
echo "GPTQ: ktq ${ktq_s} s (ppl $ppl_ktq), llm-compressor ${lc_s} s (ppl $ppl_lc): ktq is $(ratio "$lc_s" "$ktq_s")x faster"

t0=$(now)
"$ktq" eval-ppl "$src" --text "$shared/data/eval.txt" --threads "$threads" -q > "$work/ktq_ppl.txt"
t1=$(now)
"$python" -c "import torch; torch.set_num_threads($threads); import runpy, sys; sys.argv = ['transformers_ppl.py', '$src', '$shared/data/eval.txt']; runpy.run_path('$here/../tests/interop/transformers_ppl.py', run_name='__main__')" > "$work/tf_ppl.txt" 2>/dev/null
t2=$(now)
tok=130560
echo "forward: ktq $(cat "$work/ktq_ppl.txt" | sed 's/.*ppl \([0-9.]*\) .*/ppl \1/'), $("$python" -c "print(f'{$tok / ($t1 - $t0):.0f}')") tok/s; transformers $(sed 's/.*ppl \([0-9.]*\) .*/ppl \1/' "$work/tf_ppl.txt"), $("$python" -c "print(f'{$tok / ($t2 - $t1):.0f}')") tok/s: ktq is $(ratio "$(echo "$t2 - $t1" | bc)" "$(echo "$t1 - $t0" | bc)")x faster"
