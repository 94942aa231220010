#!/usr/bin/env bash
# Installs edgeq's build and test dependencies on Debian bookworm. Idempotent; runs as root,
# or through sudo.
#
#     bash cmake/install-deps.sh            compilers, CMake, xtensor, xsimd, Boost, Catch2 v2
#     bash cmake/install-deps.sh --cross    + the aarch64 cross compiler and qemu-user (Jetson Nano)
#     bash cmake/install-deps.sh --cuda     + Debian's CUDA 11.8 toolkit and g++-11, its host compiler
#     bash cmake/install-deps.sh --all      all of them
#
# nvidia-cuda-toolkit is in Debian's non-free component, so contrib and non-free are enabled
# on the Debian sources (deb822 .sources files and classic .list files alike).
set -euo pipefail

cross=0
cuda=0
for arg in "$@"; do
  case $arg in
    --cross) cross=1 ;;
    --cuda) cuda=1 ;;
    --all) cross=1 cuda=1 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

packages=(build-essential cmake libxtensor-dev libxsimd-dev libboost-dev nlohmann-json3-dev catch2 gnuplot-nox python3)
[ $cross = 1 ] && packages+=(g++-aarch64-linux-gnu qemu-user)
[ $cuda = 1 ] && packages+=(nvidia-cuda-toolkit g++-11)

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "install-deps.sh: needs root or sudo" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# Adds contrib and non-free to the Debian entries (a URI with "debian" and the main component;
# not a third-party repository such as download.docker.com/linux/debian ... stable) of one
# sources file; rewrites it only if something changes. deb822 stanzas are separated by blank
# lines.
enable_components() {
  local file=$1 tmp
  tmp=$(mktemp)
  case $file in
    *.sources)
      awk '
        function fix(line,   w, k, i, m, c, nf) {
          k = split(line, w, /[ \t]+/)
          for (i = 2; i <= k; i++) { if (w[i] == "main") m = 1; if (w[i] == "contrib") c = 1; if (w[i] == "non-free") nf = 1 }
          if (!m) return line
          if (!c) line = line " contrib"
          if (!nf) line = line " non-free"
          return line
        }
        function flush(   i) {
          for (i = 1; i <= n; i++) print (debian && buf[i] ~ /^Components:/) ? fix(buf[i]) : buf[i]
          n = 0; debian = 0
        }
        /^[ \t]*$/ { flush(); print; next }
        { buf[++n] = $0; if ($0 ~ /^URIs:.*debian/) debian = 1 }
        END { flush() }' "$file" >"$tmp" ;;
    *)
      awk '
        /^[ \t]*deb(-src)?[ \t]/ && /debian/ {
          k = split($0, w, /[ \t]+/); m = 0; c = 0; nf = 0
          for (i = 1; i <= k; i++) { if (w[i] == "main") m = 1; if (w[i] == "contrib") c = 1; if (w[i] == "non-free") nf = 1 }
          if (m && !c) $0 = $0 " contrib"
          if (m && !nf) $0 = $0 " non-free"
        }
        { print }' "$file" >"$tmp" ;;
  esac
  if ! cmp -s "$file" "$tmp"; then
    echo "install-deps.sh: enabling contrib non-free in $file"
    "${sudo[@]}" cp "$tmp" "$file"
  fi
  rm -f "$tmp"
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: all ${#packages[@]} packages are installed"
  exit 0
fi

if [ $cuda = 1 ]; then
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && enable_components "$f"
  done
fi
echo "install-deps.sh: installing ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${packages[@]}"
