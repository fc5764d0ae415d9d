"""Sphinx configuration of dropnet's documentation site (MyST markdown, autodoc + napoleon).

Build: ``tools/build_docs.sh`` (or ``sphinx-build -W --keep-going -b html docs docs/_build/html``
with dropnet importable). Figures and generated tables are written to ``docs/_generated/`` by the
scripts in ``docs/figures/`` when the build starts (see ``generate``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "figures"))

try:  # an installed dropnet, or an in-tree build (python/dropnet/_core*.so next to the sources)
    import dropnet  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "python"))
    import dropnet  # noqa: F401

project = "dropnet"
author = "dropnet developers"
copyright = "dropnet developers, MIT licence"
release = dropnet.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# Included into pages (benchmark tables, generated tables), never pages of their own.
exclude_patterns = ["_build", "_generated", "benchmarks", "figures", "README.md"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_mock_imports: list = []
napoleon_google_docstring = True
napoleon_numpy_docstring = True
nitpicky = False

html_theme = "furo"
html_title = f"dropnet {release}"
html_static_path: list = []
suppress_warnings: list = []


def generate(app) -> None:
    """Run every figure script whose output is missing or older than the script or its inputs."""
    import importlib

    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    for script in sorted((DOCS / "figures").glob("*.py")):
        module = importlib.import_module(script.stem)
        outputs = [out / name for name in module.OUTPUTS]
        inputs = [script] + [ROOT / p for p in getattr(module, "INPUTS", ())]
        newest_input = max(p.stat().st_mtime for p in inputs)
        if os.environ.get("DROPNET_DOCS_REGENERATE") or not all(
                p.exists() and p.stat().st_mtime >= newest_input for p in outputs):
            print(f"docs: generating {', '.join(module.OUTPUTS)} with docs/figures/{script.name}")
            module.main(out)


def setup(app):
    app.connect("builder-inited", generate)
