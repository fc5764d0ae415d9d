#!/usr/bin/env bash
# Regenerate the type stubs of the native module (python/dropnet/_core/*.pyi) after changing
# bindings. Needs a developer build (the module next to the sources) and pybind11-stubgen.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
PYTHONPATH=python python -m pybind11_stubgen dropnet._core -o "$tmp" --numpy-array-use-type-var
rm -f python/dropnet/_core/*.pyi
mkdir -p python/dropnet/_core
cp "$tmp"/dropnet/_core/*.pyi python/dropnet/_core/
rm -rf "$tmp"
echo "stubs written to python/dropnet/_core/"
