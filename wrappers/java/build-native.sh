#!/usr/bin/env bash
# Runs SWIG on wrappers/java/ktq_java.i (Java sources into
# target/generated-sources/swig) and compiles the JNI glue against the
# installed libktq found by pkg-config into target/native/libktq_jni.so.
# Maven runs it in the generate-sources phase.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=$here/target
gen=$target/generated-sources/swig/io/ktq/internal
mkdir -p "$gen" "$target/native"
swig -java -package io.ktq.internal -outdir "$gen" -o "$target/native/ktq_wrap.c" "$here/ktq_java.i"
java_home=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}
libdir=$(pkg-config --variable=libdir ktq)
cc -shared -fPIC -O2 -fno-strict-aliasing -Wall -Wno-unused-function "$target/native/ktq_wrap.c" -I"$java_home/include" -I"$java_home/include/linux" \
   $(pkg-config --cflags --libs ktq) -Wl,-rpath,"$libdir" -o "$target/native/libktq_jni.so"
