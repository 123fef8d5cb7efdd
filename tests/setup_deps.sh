#!/usr/bin/env bash
# Installs what building and testing ktq needs, on Debian 12 (as root, or
# through sudo): compiler, CMake, Ninja, hwloc, nlohmann-json, CLI11,
# GoogleTest, and the Python packages the independent checks use.
# Skips what is already there, so running it twice is cheap.
set -euo pipefail
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"  # rustup's default place
apt_packages=(g++ clang cmake ninja-build pkg-config libhwloc-dev nlohmann-json3-dev libcli11-dev libgtest-dev
              python3 python3-pip python3-venv libclang-rt-14-dev swig libpcre2-dev libdnnl-dev liblapacke-dev libopenblas-dev libssl-dev strace)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "ktq setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" > /dev/null
fi
command -v cargo > /dev/null || { echo "ktq setup: Rust (cargo) is needed for the Rust wrapper tests: https://rustup.rs"; exit 1; }
command -v go > /dev/null || { echo "ktq setup: Go is needed for the Go wrapper tests: https://go.dev/dl"; exit 1; }
python3 - <<'PY' 2>/dev/null || { echo "ktq setup: installing Python test packages"; python3 -m pip install -q --disable-pip-version-check -r "$(dirname "$0")/python/requirements.txt" 2>/dev/null || python3 -m pip install -q --break-system-packages -r "$(dirname "$0")/python/requirements.txt"; }
import numpy, safetensors, ml_dtypes, pytest, gguf, tokenizers
PY
