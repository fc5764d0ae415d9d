#!/usr/bin/env bash
# Run README's development set-up block as written: the fenced block after the line
# "<!-- tools/check_dev_setup.sh runs the next block -->", in the repository root, with bash -e, so
# a step the README promises and that fails in a fresh checkout fails CI. The block makes its own
# venv (.venv); remove it first for a fresh one (CI runs on a fresh clone).
#
# Environment: PYTEST_ADDOPTS narrows the block's pytest line where the caller runs the full suite
# elsewhere (.ci/run does). Where `sudo` is missing and we are root, the block's sudo runs the
# command directly (CI containers).
set -euo pipefail
cd "$(dirname "$0")/.."
marker='<!-- tools/check_dev_setup.sh runs the next block -->'
block=$(awk -v m="$marker" '
  $0 == m { found = 1; next }
  found && /^```/ { if (inside) exit; inside = 1; next }
  inside { print }' README.md)
[ -n "$block" ] || { echo "README.md has no block after: $marker"; exit 1; }
echo "--- README development block:"
echo "$block"
echo "---"
sudo_shim=''
if ! command -v sudo >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  sudo_shim='sudo() { "$@"; }'
fi
bash -euo pipefail -x -c "$sudo_shim
$block"
