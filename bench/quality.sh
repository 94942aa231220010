#!/usr/bin/env bash
# Perplexity per quantization method and bit width (issue 5's table): for one shared model, the
# float model and each scheme quantized by `edgeq quantize`, scored by `edgeq perplexity` (gptq
# protocol: non-overlapping windows of 512 tokens without BOS, every position but the first)
# on held-out text. One markdown table on stdout; a line per scheme on stderr as it goes.
#
#     bash bench/quality.sh EDGEQ_BINARY SHARED_DIR MODEL [SCHEMES...]
#
# MODEL is a folder under SHARED_DIR/models (mix-llama-27M, TinyStories-656K). The held-out
# text is the last 20% of tinystories_valid_prefix.txt (bytes 635620 to the end), which
# mix-llama-27M did not see in training (its TRAINING.md) and TinyStories-656K never saw.
# Calibration: 32 random windows of 512 tokens of tinystories_train_sample.txt, seed 1.
# Plain RTN runs without calibration data (with it, edgeq's RTN weighs errors by E[x^2]: that
# is the imatrix- row). The embedding and the classifier get quantize's defaults (q8_0 / q6_k).
# Quantized files go to a temporary folder, removed at the end.
set -euo pipefail
edgeq=$1 shared=$2 name=$3
shift 3
model=$shared/models/$name
text=$shared/data/tinystories_valid_prefix.txt
calib=$shared/data/tinystories_train_sample.txt
bytes=635620:$(stat -c %s "$text")
threads=${THREADS:-2}
schemes=("$@")
[ ${#schemes[@]} -gt 0 ] || schemes=(
  int4-g128 gptq-int4-g128 awq-int4-g128
  int3-g128 gptq-int3-g128 awq-int3-g128
  int2-g64 gptq-int2-g64 awq-int2-g64
  nf4-g64-dq gptq-nf4-g64-dq
  q4_k_m imatrix-q4_k_m gptq-q4_k_m
  spqr-3bit-g16 spqr-4bit-g16)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }
ppl() { "$edgeq" perplexity -m "$1" -f "$text" --bytes "$bytes" --ctx 512 --chunks 100000 --protocol gptq \
          --threads "$threads" --json 2>/dev/null | field "['result']['ppl']"; }

base=$(ppl "$model")
echo "float: $base" >&2
echo "| scheme | layer bits/weight | file MiB | perplexity | increase over float | quantization s |"
echo "|---|---:|---:|---:|---:|---:|"
printf '| float32 | 32 | - | %.3f | - | - |\n' "$base"
for s in "${schemes[@]}"; do
  calib_args=()
  case $s in int*|nf4*|q[0-9]*) ;; *) calib_args=(--calib "$calib" --nsamples 32 --seqlen 512 --seed 1) ;; esac
  if ! j=$("$edgeq" quantize -m "$model" -o "$tmp/q.gguf" --scheme "$s" "${calib_args[@]}" --threads "$threads" --json 2>"$tmp/err"); then
    echo "$s: failed: $(tail -1 "$tmp/err")" >&2
    printf '| %s | failed: %s | | | | |\n' "$s" "$(tail -1 "$tmp/err")"
    continue
  fi
  p=$(ppl "$tmp/q.gguf")
  echo "$s: $p" >&2
  printf '| %s | %.3f | %.2f | %.3f | %+.3f | %.1f |\n' "$s" "$(echo "$j" | field "['layer_bits_per_weight']")" \
    "$(echo "$j" | field "['file_bytes']/2**20")" "$p" "$(python3 -c "print($p-$base)")" "$(echo "$j" | field "['seconds']")"
done
