#!/usr/bin/env bash
# Install each peer engine in its own virtualenv (never in genfast's, never in CI), pinned to the
# CPU build of torch so nothing pulls a CUDA one. Run by hand; takes 10-20 minutes on 2 cores
# (most of it building llama.cpp). Re-running skips what is already there.
#
#   PEERS_DIR   where the venvs and the llama.cpp build go (default ~/.cache/genfast/peers)
#   PYTHON      the interpreter for the venvs (default python3)
set -euo pipefail
PEERS_DIR=${PEERS_DIR:-$HOME/.cache/genfast/peers}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$PEERS_DIR"
CONSTRAINTS="$HERE/constraints.txt"

venv() {  # venv NAME PACKAGES...: a virtualenv with torch (CPU) first, then the packages
  local dir="$PEERS_DIR/$1"; shift
  if [ -x "$dir/bin/python" ] && [ -f "$dir/.done" ]; then return; fi
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip
  "$dir/bin/pip" install -q torch==2.13.0
  "$dir/bin/pip" install -q -c "$CONSTRAINTS" "$@"
  # a dependency may pull PyPI's torchvision, which fails to import beside this torch build (and
  # then breaks transformers' imports); none of the peers needs it
  "$dir/bin/pip" uninstall -y -q torchvision 2>/dev/null || true
  touch "$dir/.done"
}

venv ctranslate2 ctranslate2 "transformers<5" psutil
venv optimum-intel "optimum-intel[openvino]" nncf psutil
venv optimum-onnx "optimum-onnx[onnxruntime]" psutil
# `transformers serve` (its own serving extra; from_pretrained there needs accelerate), genfast's transformers version
venv transformers-serve "transformers[serving]==5.24.0" accelerate

# llama.cpp: the C++ tools (llama-bench, llama-batched-bench, llama-quantize, llama-server) built with
# native flags from the llama.cpp source vendored in llama-cpp-python's sdist, and a venv for its HF -> GGUF
# converter.
LLAMA="$PEERS_DIR/llama.cpp"
if [ ! -x "$LLAMA/build/bin/llama-batched-bench" ]; then
  venv llama-convert "transformers<5" sentencepiece numpy psutil
  if [ ! -d "$LLAMA/src" ]; then
    "$PEERS_DIR/llama-convert/bin/pip" download -q --no-deps --no-binary :all: "llama-cpp-python==0.3.36" -d "$PEERS_DIR/sdist"
    tar -xzf "$PEERS_DIR"/sdist/llama_cpp_python-0.3.36.tar.gz -C "$PEERS_DIR/sdist"
    cp -r "$PEERS_DIR"/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp "$LLAMA/src" 2>/dev/null || {
      mkdir -p "$LLAMA" && cp -r "$PEERS_DIR"/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp "$LLAMA/src"; }
  fi
  "$PEERS_DIR/llama-convert/bin/pip" install -q -e "$LLAMA/src/gguf-py"
  cmake -S "$LLAMA/src" -B "$LLAMA/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >/dev/null
  cmake --build "$LLAMA/build" -j "$(nproc)" --target llama-bench llama-batched-bench llama-quantize llama-server >/dev/null
fi
echo "peers installed in $PEERS_DIR"
