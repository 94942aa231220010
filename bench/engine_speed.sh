#!/usr/bin/env bash
# The engine's speed and memory per weight format: prompt and decode tokens/s and peak resident
# memory of `edgeq run` for mix-llama-27M stored as f32, f16, q8_0 and 4-bit schemes, on 1 and 2
# threads, and for a synthetic TinyLlama-1.1B at 4 bits. One markdown table on stdout.
#
#     bash bench/engine_speed.sh [EDGEQ_BINARY] [SHARED_DIR]     (defaults: build/examples/edgeq, ../shared)
#
# Each cell is the median of REPEAT processes (default 3; peak memory is the process's ru_maxrss),
# greedy, a 128-token prompt and 128 generated tokens (32 for TinyLlama); the spread (min-max) of
# the decode speed is shown. Files go to a temporary folder, removed at the end.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
edgeq=${1:-$root/build/examples/edgeq}
shared=${2:-$root/../shared}
model=$shared/models/mix-llama-27M
text=$shared/data/tinystories_valid_prefix.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prompt=$(head -c 600 "$text" | tr '\n' ' ')

field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }
repeat=${REPEAT:-3}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
row() {  # row <label> <model file> <threads> <n> [extra args]
  local label=$1 file=$2 t=$3 n=$4
  shift 4
  local j prompt_tps="" decode_tps="" tokens rss
  for _ in $(seq "$repeat"); do
    j=$("$edgeq" run -m "$file" -p "$prompt" -n "$n" --temp 0 --threads "$t" --json "$@" 2>/dev/null)
    prompt_tps+="$(echo "$j" | field "['prompt_tokens_per_second']") "
    decode_tps+="$(echo "$j" | field "['decode_tokens_per_second']") "
    tokens=$(echo "$j" | field "['prompt_tokens']")
    rss=$(echo "$j" | field "['peak_rss_bytes']/2**20")
  done
  printf '| %s | %s | %s | %.1f | %.1f | %.1f-%.1f | %.0f |\n' "$label" "$t" "$tokens" \
    "$(echo $prompt_tps | tr ' ' '\n' | median)" "$(echo $decode_tps | tr ' ' '\n' | median)" \
    "$(echo $decode_tps | tr ' ' '\n' | sort -g | head -1)" "$(echo $decode_tps | tr ' ' '\n' | sort -g | tail -1)" "$rss"
}

echo "| model | threads | prompt tokens | prompt tok/s | decode tok/s | decode spread | peak MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for type in f32 f16 q8_0 q4_k int4-g128; do
  "$edgeq" convert -m "$model" -o "$tmp/mix-$type.gguf" --type "$type" >/dev/null 2>&1
  for t in 1 2; do row "mix-llama-27M $type" "$tmp/mix-$type.gguf" "$t" 128; done
done
"$edgeq" synth --like tinyllama-1.1b --type int4-g128 -o "$tmp/tinyllama.gguf" >/dev/null 2>&1
for t in 1 2; do row "TinyLlama-1.1B (synthetic) int4-g128" "$tmp/tinyllama.gguf" "$t" 32 --ctx 512; done
