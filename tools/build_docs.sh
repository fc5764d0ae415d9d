#!/usr/bin/env bash
# Builds the documentation site with warnings as errors, then (with --check) renders every page in
# headless Chromium and checks that it loads with its images (tests/test_docs.py, marker "docs").
#   pip install ".[docs]"          # or an in-tree build: conf.py then imports python/dropnet
#   tools/build_docs.sh [--check]  # site in docs/_build/html
# Figures and generated tables go to docs/_generated/ (docs/figures/*.py, run by docs/conf.py).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
# An installed dropnet, or else the in-tree build (python/dropnet/_core*.so beside the sources).
if ! "$py" -c "import dropnet" 2>/dev/null; then export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"; fi
"$py" -m sphinx -W --keep-going -q -b html docs docs/_build/html
echo "built docs/_build/html/index.html"
if [ "${1:-}" = "--check" ]; then
  # DROPNET_DOCS_REQUIRED: a missing Chromium or site fails these tests instead of skipping them.
  DROPNET_DOCS_REQUIRED=1 "$py" -m pytest -q -m docs -p no:cacheprovider tests/test_docs.py
fi
