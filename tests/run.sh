#!/usr/bin/env bash
# edgeq's test command: builds and tests every configuration, one section each, then prints one
# line "N passed, M failed" (CTest results summed over the sections) and exits non-zero if
# anything failed.
#
#     bash tests/run.sh [--clean] [cxx14] [cxx17] [cross] [cuda]     (default: all sections)
#
#   cxx14  native build, C++14, -Wall -Wextra -Werror, ctest
#   cxx17  the library and its tests as C++17 (the tool and benchmarks: cxx14 only)
#   cross  Jetson Nano (aarch64, Cortex-A57) cross build of the library's tests, ctest under qemu-user
#   cuda   CUDA kernels compiled for sm_53 and sm_90 with Debian's nvcc 11.8; their tests
#          run, and skip without a GPU
#
# A section whose toolchain is missing prints SKIPPED and is not counted, unless CI=true: there
# it counts as a failure. A configure or build error counts as one failed test. Build trees
# live in build/run/<section> (EDGEQ_RUN_DIR overrides) and are reused unless --clean.
# EDGEQ_NVCC and EDGEQ_CUDA_HOST_CXX override the CUDA compilers (/usr/bin/nvcc, g++-11).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${EDGEQ_RUN_DIR:-$root/build/run}
jobs=$(nproc 2>/dev/null || echo 2)
ci=${CI:-false}

clean=0
sections=()
for arg in "$@"; do
  case $arg in
    --clean) clean=1 ;;
    cxx14 | cxx17 | cross | cuda) sections+=("$arg") ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "tests/run.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
[ ${#sections[@]} -eq 0 ] && sections=(cxx14 cxx17 cross cuda)
[ $clean = 1 ] && rm -rf "$out"
mkdir -p "$out"

passed=0
failed=0
report=()  # one line per section for the closing table

header() {
  echo
  echo "=============================================================================="
  echo "== $*"
  echo "=============================================================================="
}

# skip <section> <why> <install-deps option>: SKIPPED, or a failure under CI=true.
skip() {
  if [ "$ci" = true ]; then
    echo "FAILED: $2 (CI=true: a missing toolchain is a failure; install with cmake/install-deps.sh $3)"
    failed=$((failed + 1))
    report+=("$1: FAILED, toolchain missing")
  else
    echo "SKIPPED: $2 (install with cmake/install-deps.sh $3)"
    report+=("$1: SKIPPED")
  fi
}

# step <section> <what> <command...>: runs a configure or build step; a failure counts as one.
step() {
  local name=$1 what=$2
  shift 2
  if ! "$@"; then
    echo "FAILED: $name: $what"
    failed=$((failed + 1))
    return 1
  fi
}

# run_ctest <section> <build dir> [ctest args...]: runs CTest, adds its results to the totals.
run_ctest() {
  local name=$1 dir=$2
  shift 2
  local junit="$dir/ctest-junit.xml"
  rm -f "$junit"
  ctest --test-dir "$dir" -j "$jobs" --output-on-failure --output-junit "$junit" "$@"
  local rc=$? p=0 f=0
  if [ -f "$junit" ]; then
    p=$(grep -o 'status="run"' "$junit" | wc -l)
    f=$(grep -o 'status="fail"' "$junit" | wc -l)
  fi
  # CTest failing without a failed test (no tests found, a crash of ctest itself) is a failure too.
  [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
  passed=$((passed + p))
  failed=$((failed + f))
  echo "-- $name: $p passed, $f failed"
  section_result="$p passed, $f failed"
}

# timed <section> <function>: runs one section and records its time.
timed() {
  local name=$1 start=$SECONDS n=${#report[@]}
  section_result=""
  "$2"
  if [ ${#report[@]} -eq "$n" ]; then
    report+=("$name: ${section_result:-FAILED before testing}, $((SECONDS - start)) s")
  fi
}

have_native() { command -v cmake >/dev/null && command -v c++ >/dev/null; }

native() {
  local std=$1 name=cxx$1 dir="$out/cxx$1" extra=()
  header "$name: native build, C++$std, -Wall -Wextra -Werror"
  if ! have_native; then skip "$name" "cmake or a C++ compiler is missing" ""; return; fi
  # C++17 checks the library and its tests; the tool and benchmarks (which instantiate every
  # format's kernels in several files) are built and tested once, in the C++14 section.
  [ "$std" = 17 ] && extra=(-DEDGEQ_BUILD_EXAMPLES=OFF -DEDGEQ_BUILD_BENCH=OFF)
  step "$name" configure cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DEDGEQ_CXX_STANDARD="$std" \
    -DEDGEQ_WERROR=ON -DEDGEQ_CUDA=OFF "${extra[@]}" || return
  step "$name" build cmake --build "$dir" -j "$jobs" || return
  run_ctest "$name" "$dir"
}
section_cxx14() { native 14; }
section_cxx17() { native 17; }

section_cross() {
  local name=cross dir="$out/cross" toolchain="$root/cmake/toolchains/jetson-nano.cmake"
  header "cross: Jetson Nano (aarch64, Cortex-A57), tests under qemu-user"
  if [ ! -f "$toolchain" ]; then
    skip cross "cmake/toolchains/jetson-nano.cmake does not exist yet" "--cross"
    return
  fi
  if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    skip cross "aarch64-linux-gnu-g++ or qemu-aarch64 is missing" "--cross"
    return
  fi
  # No benchmarks here: timings under qemu mean nothing (the native sections build them). No
  # command-line tool either: the library and its tests (engine, conversion, every format's NEON
  # kernels) are what runs differently on the A57; the tool is tested in the C++14 section.
  step cross configure cmake -S "$root" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DCMAKE_BUILD_TYPE=Release \
    -DEDGEQ_WERROR=ON -DEDGEQ_CUDA=OFF -DEDGEQ_BUILD_BENCH=OFF -DEDGEQ_BUILD_EXAMPLES=OFF || return
  step cross build cmake --build "$dir" -j "$jobs" || return
  run_ctest cross "$dir"
}

section_cuda() {
  local name=cuda dir="$out/cuda" nvcc=${EDGEQ_NVCC:-/usr/bin/nvcc} host=${EDGEQ_CUDA_HOST_CXX:-g++-11}
  header "cuda: kernels for sm_53 (Jetson Nano) and sm_90 (H100), $nvcc with $host"
  if [ ! -x "$nvcc" ] || ! command -v "$host" >/dev/null; then
    skip cuda "$nvcc or $host is missing" "--cuda"
    return
  fi
  (
    # nvcc runs ptxas, fatbinary... from PATH: put its own toolkit's first, so that another
    # CUDA on PATH (CUDA 13 has no sm_53) is not mixed in.
    PATH="$(dirname "$nvcc"):$PATH"
    export PATH
    # Work-around for machines with another CUDA's headers in /usr/local/include, which the
    # host compiler searches before /usr/include (Debian's toolkit headers): shadow them with
    # links to the toolkit's own, in a directory given with -I (searched first).
    cuda_flags=""
    if [ "$(dirname "$nvcc")" = /usr/bin ] && [ -e /usr/local/include/cuda_runtime.h ] &&
      ! [ /usr/local/include/cuda_runtime.h -ef /usr/include/cuda_runtime.h ]; then
      shadow="$dir/shadow-include"
      rm -rf "$shadow" && mkdir -p "$shadow"
      for f in /usr/local/include/*; do
        n=$(basename "$f")
        [ -e "/usr/include/$n" ] && ln -s "/usr/include/$n" "$shadow/$n"
      done
      cuda_flags="-I$shadow"
      echo "note: /usr/local/include holds other CUDA headers; shadowed by $shadow"
    fi
    step cuda configure cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DEDGEQ_WERROR=ON -DEDGEQ_CUDA=ON \
      -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_HOST_COMPILER="$host" -DCMAKE_CUDA_ARCHITECTURES="53;90" \
      -DCMAKE_CUDA_FLAGS="$cuda_flags" || exit 1
    step cuda build cmake --build "$dir" -j "$jobs" --target edgeq_cuda_tests || exit 1
  ) || { failed=$((failed + 1)); return; }
  # No GPU here: the tests report SKIPPED and pass; with one, they compare with the CPU.
  run_ctest cuda "$dir" -L cuda
}

total_start=$SECONDS
for s in "${sections[@]}"; do timed "$s" "section_$s"; done

header "summary ($((SECONDS - total_start)) s)"
for line in "${report[@]}"; do echo "  $line"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
