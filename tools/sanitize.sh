#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer job: builds the C++ tests and the Python extension
# with -fsanitize=address,undefined in a separate build directory, then runs ctest and a subset of
# pytest (the hardening regressions, the short fuzz profile, the op and checkpoint tests) with every
# sanitizer report fatal.
#
#   tools/sanitize.sh [extra pytest args]      e.g. tools/sanitize.sh -k matmul
#
# Environment: BUILD_DIR (default build/sanitize), PYTHON (python3), JOBS (2).
# The instrumented module goes into a copy of the package under $BUILD_DIR/py, never into
# python/dropnet, so the developer's build is left alone. ccache is used when installed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=${PYTHON:-python3}
build=${BUILD_DIR:-build/sanitize}
jobs=${JOBS:-2}
start=$(date +%s)
section() { echo; echo "=== sanitize: $* ($(( $(date +%s) - start )) s)"; }

section "configure ($build)"
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
# -fno-sanitize-recover: a UBSan finding aborts like an ASan one does. -O1 keeps the build and the
# run fast while leaving the stack traces readable.
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g"
pkg="$build/py/dropnet"
mkdir -p "$pkg"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDROPNET_BUILD_TESTS=ON -DDROPNET_BUILD_BENCH=OFF \
  -DDROPNET_CUDA=OFF -DDROPNET_PYTHON=ON -DDROPNET_MODULE_DIR="$root/$pkg" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -Dpybind11_DIR="$($py -c 'import pybind11; print(pybind11.get_cmake_dir())')" "${launcher[@]}" >/dev/null

section "build"
# The package's Python files beside the instrumented module, with their _version.py.
bash tools/copy_package.sh "$root/$build/py" "$py"
cmake --build "$build" --parallel "$jobs"

export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_init_order=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

section "ctest"
# Leaks are checked here (a C++ process we own end to end), unlike in the interpreter below.
ASAN_OPTIONS="${ASAN_OPTIONS/detect_leaks=0/detect_leaks=1}" ctest --test-dir "$build" --output-on-failure

section "pytest subset"
# The interpreter is not instrumented: the ASan runtime must be loaded before it (LD_PRELOAD);
# CPython's own allocations at exit are not leaks worth reporting (detect_leaks=0 above).
asan_rt=$(${CXX:-c++} -print-file-name=libasan.so)
ubsan_rt=$(${CXX:-c++} -print-file-name=libubsan.so)
[ -f "$asan_rt" ] || { echo "libasan.so not found (got '$asan_rt')"; exit 1; }
tests=(tests/test_hardening.py tests/test_fuzz.py tests/test_atomic_updates.py tests/test_checkpoint_hostile.py
       tests/test_dropout.py tests/test_pooling.py tests/test_batchnorm.py tests/test_sparse.py tests/test_gemm.py
       tests/test_conv.py tests/test_conv_winograd.py tests/test_device_arrays.py
       tests/test_cnn.py::test_batch_norm_relu_max_pool_fused_have_the_bits_of_the_three_layers)
# Peak-RSS assertions measure ASan's shadow memory and quarantine, not dropnet: left to the plain run.
LD_PRELOAD="$asan_rt $ubsan_rt" PYTHONPATH="$root/$build/py" \
  "$py" -m pytest -q -x -p no:cacheprovider "${tests[@]}" \
  --deselect tests/test_checkpoint_hostile.py::test_peak_memory_while_loading_is_at_most_twice_the_declared_model "$@"

section "done: sanitizer-clean"
