#!/usr/bin/env bash
# Copies the dropnet package's Python files (and data, stubs, py.typed) into DEST/dropnet, beside
# which a separate build puts its own _core module (tools/sanitize.sh, tools/gpu_check.sh), and
# gives the copy the _version.py a wheel would carry: outside the checkout it cannot read
# ../../pyproject.toml. Run from the repository root:  tools/copy_package.sh DEST [PYTHON]
set -euo pipefail
dest=$1
py=${2:-python3}
pkg="$dest/dropnet"
mkdir -p "$pkg"
find "$pkg" -name '*.py' -delete
# cp --parents instead of rsync keeps it portable.
(cd python && find dropnet -type f \( -name '*.py' -o -name 'py.typed' -o -name '*.pyi' \) -print0 |
  xargs -0 -I{} cp --parents {} "$dest/")
if [ -d python/dropnet/data ]; then cp -r python/dropnet/data "$pkg/"; fi
$py -c 'import runpy; v = runpy.run_path("python/dropnet/_version_source.py")["version_from_pyproject"]("pyproject.toml"); print(f"version = \"{v}\"")' \
  > "$pkg/_version.py"
