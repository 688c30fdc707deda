#!/usr/bin/env bash
# By hand, not in CI (about 15 minutes): the real addon on arm64 without an
# arm64 machine. Builds the committed tree, cross-compiles the addon for
# arm64 with node-gyp, and runs the native kernel tests and the hf-tiny
# verifications in Debian's arm64 Node (bookworm: Node 18) under qemu-aarch64
# in user mode. Needs root for `dpkg --add-architecture arm64` (once), the
# AArch64 cross compiler and qemu-user (see .ci/run), and node_modules.
#
#   native/check/addon-under-qemu.sh [work directory, default /tmp/glassformer-arm64]
#
# qemu runs every instruction in software, so no timing means anything here:
# matmul.test.js's "FMA peak is a positive rate" (> 0.5 GFLOP/s) fails under
# it (0.3 GFLOP/s for every variant); everything else must pass.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/glassformer-arm64}
export GLASSFORMER_SHARED=${GLASSFORMER_SHARED:-$repo/../shared}
mkdir -p "$work/debs" "$work/sysroot" "$work/repo/build/Release"

# Node and the libraries it links, unpacked into a sysroot for qemu's -L.
dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }
(cd "$work/debs" && apt-get download -qq nodejs:arm64 libnode108:arm64 libbrotli1:arm64 libc-ares2:arm64 \
  libc6:arm64 libgcc-s1:arm64 libicu72:arm64 libnghttp2-14:arm64 libssl3:arm64 libstdc++6:arm64 libuv1:arm64 \
  zlib1g:arm64 node-acorn node-cjs-module-lexer node-undici)
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/sysroot"; done

# The committed tree, compiled, with the addon built for arm64 against this
# Node's headers (N-API is the same ABI in Node 18).
git -C "$repo" archive HEAD | tar -x -C "$work/repo"
ln -sfn "$repo/node_modules" "$work/repo/node_modules"
cd "$work/repo"
npx tsc -p tsconfig.json
gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ \
  node "$gyp" rebuild --arch=arm64 --nodedir="$(dirname "$(dirname "$(command -v node)")")" > "$work/gyp.log" 2>&1

node_arm64=(qemu-aarch64 -L "$work/sysroot" "$work/sysroot/usr/bin/node")
"${node_arm64[@]}" --input-type=module \
  -e "import { useFastestKernel, kernelInfo } from './dist/src/kernels/index.js'; await useFastestKernel(); console.log(kernelInfo())"
# `node --test` would start each file with the host's exec, which cannot run
# an arm64 binary without binfmt_misc; a test file run directly runs its tests.
for name in matmul bf16 int8 prepack attention elementwise; do
  "${node_arm64[@]}" "dist/test/kernels/$name.test.js" > "$work/$name.log" 2>&1 || true
  echo "$name: $(grep -E '^# (pass|fail)' "$work/$name.log" | tr '\n' ' ') (log: $work/$name.log)"
done
for fixture in vanilla bert bert/classification gpt2 llama t5 t5/gated-gelu bart marian; do
  echo "verify $fixture: $("${node_arm64[@]}" dist/src/cli/main.js verify "$GLASSFORMER_SHARED/fixtures/hf-tiny/$fixture" 2>&1 | tail -1)"
done
