#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds examples/c against
# that installed tree twice - with pkg-config and with CMake find_package -
# and runs both on the demo model. Nothing from the source or build tree is
# on the include or library path of the consumers.
# usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" > "$work/install.log"
libdir=$(cd "$prefix" && ls -d lib* | head -1)
test -L "$prefix/$libdir/libktq.so" || { echo "libktq.so symlink missing"; exit 1; }
ls "$prefix/$libdir"/libktq.so.0 > /dev/null
test -f "$prefix/include/ktq/ktq.h"
test -x "$prefix/bin/ktq"
"$prefix/bin/ktq" --version | grep -q "^ktq 0\."
# Only KTQ_API symbols are exported.
exported=$(nm -D --defined-only "$prefix/$libdir/libktq.so" | awk '$2 ~ /[TDB]/ {print $3}')
bad=$(echo "$exported" | grep -v '^ktq_' || true)
if [ -n "$bad" ]; then echo "symbols exported beyond the C API:"; echo "$bad" | head; exit 1; fi

model=$src/examples/models/tiny-deepseek-v3-fp8

# 1. pkg-config
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
cc -std=c99 -Wall -Werror -pedantic "$src/examples/c/convert_model.c" $(pkg-config --cflags --libs ktq) \
   -Wl,-rpath,"$prefix/$libdir" -o "$work/with_pkgconfig"
"$work/with_pkgconfig" "$model" "$work/out1" | tee "$work/run1.log"
grep -q "DeepseekV3ForCausalLM, 3 layers, 16 experts (top-4), 1 shared, 1 dense first, source F8_E4M3" "$work/run1.log"
test -f "$work/out1/model.safetensors"

# 2. find_package
cmake -S "$src/examples/c" -B "$work/build-example" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_RPATH="$prefix/$libdir" > "$work/cmake.log"
cmake --build "$work/build-example" > "$work/build.log"
"$work/build-example/convert_model" "$model" "$work/out2" > "$work/run2.log"
cmp "$work/out1/model.safetensors" "$work/out2/model.safetensors"

# 3. C++ consumers can include the header too.
printf '#include <ktq/ktq.h>\nint main() { return ktq_version_number() == KTQ_VERSION_NUMBER ? 0 : 1; }\n' > "$work/cxx.cpp"
c++ -Wall -Werror "$work/cxx.cpp" $(pkg-config --cflags --libs ktq) -Wl,-rpath,"$prefix/$libdir" -o "$work/cxx"
"$work/cxx"
echo "consumer test passed (pkg-config, find_package, C++ include)"
