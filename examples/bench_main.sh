#!/usr/bin/env bash
# The README's main job: `edgeq bench` on a small model, the report in build/bench/report.md.
#
#     bash examples/bench_main.sh [OUT_DIR]        (EDGEQ: the binary; EDGEQ_SHARED: ../shared)
#
# With ../shared: TinyStories-656K (real weights) with ten schemes from 8 down to 2 bits, RTN,
# GPTQ and AWQ calibrated on TinyStories train text, perplexity on the validation text. Without
# it: a one-layer TinyLlama-1.1B with random weights (edgeq synth), whose sizes, speeds and
# memory are real but whose perplexity and answers mean nothing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
edgeq=${EDGEQ:-$root/build/examples/edgeq}
shared=${EDGEQ_SHARED:-$root/../shared}
out=${1:-$root/build/bench}
threads=$(nproc 2>/dev/null || echo 2)

if [ -d "$shared/models/TinyStories-656K" ]; then
  exec "$edgeq" bench -m "$shared/models/TinyStories-656K" -o "$out" --threads "$threads" \
    --schemes q8_0,int8-g128,int4-g128,rtn-clip-int4-g128,gptq-int4-g128,awq-int4-g128,nf4-g64-dq,int3-g128,gptq-int3-g128,int2-g64-asym \
    --calib "$shared/data/tinystories_train_sample.txt" --eval "$shared/data/tinystories_valid_prefix.txt"
fi
echo "bench_main.sh: no $shared/models/TinyStories-656K; benchmarking a synthetic one-layer TinyLlama instead" >&2
mkdir -p "$out"
[ -f "$out/synth-tinyllama-1layer.gguf" ] ||
  "$edgeq" synth --like tinyllama-1.1b --layers 1 --type f16 -o "$out/synth-tinyllama-1layer.gguf" --threads "$threads"
exec "$edgeq" bench -m "$out/synth-tinyllama-1layer.gguf" -o "$out" --threads "$threads" --baseline f16 \
  --schemes q8_0,int8-g128,int4-g128,q4_k,nf4-g64-dq,int2-g64-asym \
  --eval "$root/README.md" --ppl-ctx 128 --ppl-chunks 2 --speed-tokens 32 --answer-tokens 16 --ctx 2048
