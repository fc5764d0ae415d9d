"""The project's documentation: nothing in the repository points outside it, the built site's pages
render in headless Chromium with their images, and the code on the pages runs."""
from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import List
from xml.etree import ElementTree

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The directories and files a clone holds (build outputs and caches left out).
SOURCE_DIRS = ("cpp", "python", "tests", "benchmarks", "examples", "docs", "tools", ".ci", ".github")
SOURCE_FILES = ("README.md", "CHANGELOG.md", "CMakeLists.txt", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".pyi", ".cpp", ".h", ".cu", ".cuh", ".md", ".txt", ".toml", ".cfg", ".sh", ".yml",
                 ".yaml", ".rst", ".css", ".html", ""}
# A design document that is not the project's own, or a path that leaves the repository.
OUTSIDE = re.compile(r"\.\./shared|(?<![\w/])DESIGN\.md|BENCHMARKS\.md|STYLE\.md")


def _source_files():
    for name in SOURCE_FILES:
        if (ROOT / name).is_file():
            yield ROOT / name
    for d in SOURCE_DIRS:
        base = ROOT / d
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "_build" not in path.parts \
                    and "__pycache__" not in path.parts:
                yield path


def test_nothing_points_outside_the_repository():
    offenders = []
    for path in _source_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "cite docs/design.md or docs/performance.md instead:\n" + "\n".join(offenders)


def test_design_doc_names_what_the_code_cites():
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    # Section names that comments quote must exist as headings.
    headings = {line.lstrip("#").strip() for line in design.splitlines() if line.startswith("#")}
    for cited in ("The Philox stream contract", "Determinism", "Canonical reduction orders", "Errors",
                  "How sparse execution chooses its path", "Layers of the code"):
        assert cited in headings, cited
    quoted = set()
    for path in _source_files():
        if path.suffix in {".cpp", ".h", ".py", ".cu"}:
            quoted.update(re.findall(r'docs/design\.md,\s+"([^"]+)"', path.read_text(encoding="utf-8")))
    assert quoted, "expected comments quoting sections of docs/design.md"
    assert quoted <= headings, f"comments quote sections docs/design.md does not have: {quoted - headings}"


# What each layer of cpp/dropnet may include (docs/design.md, "Layers of the code").
ALLOWED_INCLUDES = {
    "core": ("core/",),
    "kernels": ("core/",),
    "kernels/cpu": ("core/", "kernels/cpu/", "kernels/backend.h"),
    "kernels/cuda": ("core/", "kernels/cuda/", "kernels/backend.h"),
    "nn": ("core/", "kernels/backend.h", "kernels/cpu/", "nn/"),
}


def test_includes_follow_the_layers_of_the_design():
    include = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
    broken = []
    for layer, allowed in ALLOWED_INCLUDES.items():
        files = [p for p in (ROOT / "cpp" / "dropnet" / layer).iterdir() if p.suffix in {".h", ".cpp", ".cu", ".cuh"}]
        assert files, layer
        for path in files:
            for target in include.findall(path.read_text(encoding="utf-8")):
                where = f"{path.relative_to(ROOT)} includes {target}"
                if target.startswith(("pybind11", "Python.h")):
                    broken.append(where + " (no Python below the bindings)")
                elif target.startswith("dropnet/"):
                    inner = target[len("dropnet/"):]
                    if not inner.startswith(allowed):
                        broken.append(where + f" (a {layer} file may include only {', '.join(allowed)})")
                    elif layer == "nn" and re.search(r"_avx(2|512)\.h$", inner):
                        broken.append(where + " (nn/ calls the dispatching entries, never an ISA's own header)")
    assert not broken, "\n".join(broken)


# ------------------------------------------------------------------ the documentation site
# tools/build_docs.sh builds it into docs/_build/html; `tools/build_docs.sh --check` (CI) then runs
# the tests marked "docs" with DROPNET_DOCS_REQUIRED=1, so a missing site or Chromium fails there
# instead of skipping.
SITE = ROOT / "docs" / "_build" / "html"
REQUIRED = os.environ.get("DROPNET_DOCS_REQUIRED") == "1"
# Page -> (its title, text the rendered page must show, least number of images).
PAGES = {
    "index": ("dropnet", ["Dropout you can reproduce", "Quick start"], 0),
    "install": ("Install", ["pip install", "DROPNET_CUDA", "mpi4py"], 0),
    "quickstart": ("Quick start", ["Sequential", "mc_samples"], 0),
    "dropout": ("Dropout", ["Monte Carlo dropout", "The reproducibility contract", "no dropout"], 1),
    "pruning": ("Pruning and lottery tickets", ["How sparse execution decides", "winning ticket", "10.8 %"], 1),
    "performance": ("Performance", ["train_step", "torch step", "Command"], 0),
    "distributed": ("Data-parallel training over MPI", ["mpiexec", "The per-rank contract"], 0),
    "cli": ("Command line", ["dropnet demo", "usage: dropnet train"], 0),
    "design": ("Design", ["The Philox stream contract", "Determinism", "How sparse execution chooses its path"], 0),
    "differences": ("Differences from Keras and PyTorch", ["NCHW", "Adam epsilon"], 0),
    "api": ("API reference", ["dropnet.Sequential", "fit", "dropout_backward", "CSRMatrix", "LotteryTicket"], 0),
}


def _need(condition: bool, reason: str) -> None:
    """Skip with `reason` on a developer's machine; fail in CI (DROPNET_DOCS_REQUIRED=1)."""
    if condition:
        return
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


def _site() -> Path:
    _need((SITE / "index.html").is_file(), f"documentation site not built ({SITE}): run tools/build_docs.sh "
                                           "after pip install '.[docs]'")
    return SITE


def _chromium() -> str:
    found = [shutil.which(name) for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser") if name]
    found = [f for f in found if f]
    _need(bool(found), "Chromium not installed (Debian: apt-get install chromium; or set CHROMIUM)")
    return found[0]


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs).get("src", ""))


def _check_image_file(path: Path) -> None:
    data = path.read_bytes()
    if path.suffix == ".png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path}: not a PNG"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 100 and height > 100, f"{path}: {width}x{height}"
    elif path.suffix == ".svg":
        root = ElementTree.fromstring(data)
        assert root.tag.endswith("svg"), f"{path}: root element {root.tag}"
    else:
        raise AssertionError(f"{path}: unexpected image type")


@pytest.mark.docs
def test_built_pages_reference_images_that_exist_and_are_valid():
    site = _site()
    for page, (_, _, min_images) in PAGES.items():
        html = (site / f"{page}.html").read_text(encoding="utf-8")
        parser = _Images()
        parser.feed(html)
        assert len(parser.srcs) >= min_images, f"{page}.html: {len(parser.srcs)} images, expected >= {min_images}"
        for src in parser.srcs:
            assert not src.startswith(("http:", "https:", "//")), f"{page}.html loads {src} from the network"
            _check_image_file((site / src).resolve())


# Loads every page in an iframe of one probe page and writes, once all have loaded, what Chromium
# made of each: its title, first heading, text and every image's natural size (0 = not decoded).
_PROBE = """<!doctype html><html><body><pre id="out">pending</pre>%(frames)s
<script>
var pages = %(pages)s, left = pages.length, result = {};
function report(name, frame) {
  var d = frame.contentDocument, images = [];
  for (var i = 0; i < d.images.length; i++) {
    var im = d.images[i];
    images.push({src: im.getAttribute('src'), complete: im.complete, width: im.naturalWidth});
  }
  var h1 = d.querySelector('h1');
  result[name] = {title: d.title, h1: h1 ? h1.textContent : null, text: d.body.innerText, images: images};
  if (--left === 0) document.getElementById('out').textContent = JSON.stringify(result);
}
</script></body></html>"""


def _render_all(site: Path, tmp_path: Path) -> dict:
    names = list(PAGES)
    frames = "".join(f'<iframe width="1200" height="900" src="{(site / f"{n}.html").as_uri()}" '
                     f'onload="report(\'{n}\', this)"></iframe>' for n in names)
    probe = tmp_path / "probe.html"
    probe.write_text(_PROBE % {"frames": frames, "pages": json.dumps(names)}, encoding="utf-8")
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--allow-file-access-from-files", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=60000",
           "--dump-dom", probe.as_uri()]
    # On a loaded machine Chromium has been seen to stop before every frame reported; a page that
    # is really broken fails all three tries.
    for _ in range(3):
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        match = re.search(r'<pre id="out">(.*?)</pre>', run.stdout, re.S)
        if run.returncode == 0 and match and match.group(1) != "pending":
            return json.loads(html_lib.unescape(match.group(1)))
    raise AssertionError(f"chromium exit status {run.returncode}; the pages did not all report: "
                         f"stdout {run.stdout[:300]!r} stderr {run.stderr[-1500:]!r}")


@pytest.mark.docs
def test_every_page_renders_in_chromium_with_its_images(tmp_path):
    site = _site()
    rendered = _render_all(site, tmp_path)
    for page, (title, texts, min_images) in PAGES.items():
        got = rendered[page]
        assert got["h1"] is not None and got["h1"].rstrip("¶").strip() == title, (page, got["h1"])
        assert got["title"].startswith(title), (page, got["title"])
        for text in texts:
            assert text in got["text"], f"{page}: {text!r} not on the rendered page"
        assert len(got["images"]) >= min_images, (page, got["images"])
        for image in got["images"]:
            assert image["complete"] and image["width"] > 0, f"{page}: image {image['src']} did not load"


@pytest.mark.docs
def test_screenshot_of_the_dropout_page_shows_its_figure(tmp_path):
    site = _site()
    shot_dir = SITE.parent / "screenshots"
    shot_dir.mkdir(exist_ok=True)
    shot = shot_dir / "dropout.png"
    shot.unlink(missing_ok=True)
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,3000", "--virtual-time-budget=10000",
           f"--screenshot={shot}", (site / "dropout.html").as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and shot.is_file(), f"chromium failed ({run.returncode}): {run.stderr[-2000:]}"
    _check_image_file(shot)
    pytest.importorskip("PIL", reason="Pillow (a matplotlib dependency) decodes the screenshot")
    from PIL import Image

    with Image.open(shot) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    assert rgb.shape[:2] == (3000, 1280)
    # The figure's curves are matplotlib's C0 blue (31, 119, 180) and C1 orange (255, 127, 14):
    # colours the theme and the code highlighting do not use, so many pixels of both mean the
    # figure was drawn (its section comes second on the page, inside the window).
    for name, colour in (("blue", (31, 119, 180)), ("orange", (255, 127, 14))):
        near = (np.abs(rgb - np.array(colour, dtype=np.int16)).max(axis=2) <= 40).sum()
        assert near > 500, f"only {near} {name} pixels: the figure is not on the screenshot"


def _python_blocks(page: str) -> List[str]:
    text = (ROOT / "docs" / f"{page}.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.mark.docs
@pytest.mark.slow
@pytest.mark.parametrize("page", ["quickstart", "dropout", "pruning"])
def test_code_on_the_pages_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the quick start saves a checkpoint
    blocks = _python_blocks(page)
    assert blocks, f"docs/{page}.md has no python blocks"
    namespace: dict = {}
    for k, block in enumerate(blocks):
        exec(compile(block, f"docs/{page}.md block {k}", "exec"), namespace)  # noqa: S102


def test_mc_dropout_streams_are_those_docs_design_states():
    # docs/design.md, "The Philox stream contract" (who takes which stream): pass j over batch b of
    # predict(mc_samples=k, seed=m) uses stream 2^62 + m·2^32 + (j·n_batches + b)·S (S: streams per training pass),
    # keyed by the model seed.
    import dropnet
    from dropnet import layers

    seed, m, n, units, batch = 11, 3, 10, 8, 6
    model = dropnet.Sequential([layers.Input((5,)), layers.Dense(units, activation="relu"), layers.Dropout(0.5),
                                layers.Dense(3)], seed=seed)
    model.compile("sgd", loss="mse")
    w1, b1, w2, b2 = (w.astype(np.float64) for w in model.get_weights())
    x = np.random.default_rng(5).standard_normal((n, 5)).astype(np.float32)
    samples, n_batches = 2, -(-n // batch)
    want = np.zeros((n, 3))
    for j in range(samples):
        for b, lo in enumerate(range(0, n, batch)):
            xb = x[lo:lo + batch].astype(np.float64)
            stream = 2**62 + m * 2**32 + (j * n_batches + b) * 1
            keep = dropnet.random.uniform_bits(len(xb) * units, seed, stream) < np.uint32(2**31)  # p = 0.5
            h = np.maximum(xb @ w1.T + b1, 0) * keep.reshape(len(xb), units) * 2.0
            want[lo:lo + batch] += h @ w2.T + b2
    mean, _ = model.predict(x, mc_samples=samples, seed=m, batch_size=batch)
    np.testing.assert_allclose(mean, want / samples, rtol=1e-5, atol=1e-5)
