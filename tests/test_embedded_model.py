"""The compact model shipped inside the package, the example images, and the README's first command."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "hypernst_cli" / "weights" / "embedded" / "compact"
EXAMPLES = REPO / "examples"


def readme_first_command() -> tuple[list[list[str]], list[str]]:
    """The README's first set-up command after its install, as argv lists: the example scripts
    it runs (`.venv/bin/python examples/...`) and its final `hypernst stylize ...`."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    first = next(line for line in lines if "pip install -e " in line and "hypernst stylize" in line)
    steps = [step.strip() for step in first.split("&&")]
    assert steps[-1].startswith(".venv/bin/hypernst stylize"), steps[-1]
    scripts = [shlex.split(s)[1:] for s in steps if s.startswith(".venv/bin/python ")]
    return scripts, shlex.split(steps[-1])[1:]


def test_embedded_compact_model_is_complete_trained_and_small():
    from hypernst_cli.weights.checkpoint import load_model_folder

    folder = load_model_folder(EMBEDDED)
    cfg = folder.model_config()
    assert cfg.name == "compact" and cfg.resolution >= 128
    assert {"generator", "encoder", "aladin", "hypernet"} <= set(folder.networks)
    assert set(folder.networks["directions"]) >= {"age", "smile", "pose"}
    networks = json.loads((EMBEDDED / "metrics.json").read_text())["networks"]
    assert all(networks[n] == "trained" for n in ("generator", "encoder", "aladin", "hypernet"))
    total = sum(f.stat().st_size for f in EMBEDDED.rglob("*") if f.is_file())
    assert total <= 40 * 2**20


def test_the_registry_pins_the_embedded_file():
    from hypernst_cli.weights.download import verify_present
    from hypernst_cli.weights.registry import get_entry

    entry = get_entry("compact-embedded")
    assert entry.embedded and entry.sha256 and "compact" in entry.configs
    result = verify_present(entry)
    assert result.status == "ok", result.detail


def test_compact_resolves_to_the_embedded_model_offline(monkeypatch, tmp_path):
    from hypernst_cli.weights.checkpoint import resolve_weights

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing downloaded
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve_weights(None, "compact")
    assert resolved.origin == "embedded" and Path(resolved.path).resolve() == EMBEDDED.resolve()


def test_example_content_faces_are_detected():
    from hypernst_cli.faces.dlib_backend import DlibFaces
    from hypernst_cli.io.images import load_image

    faces = sorted((EXAMPLES / "content").glob("*.png"))
    assert len(faces) >= 2
    detector = DlibFaces()
    for path in faces:
        assert len(detector.detect_boxes(load_image(path))) == 1, path


def test_readme_first_command_stylizes_the_example(tmp_path):
    """The README's first command, run as written (from the repository root) but writing into a
    temporary folder: its example script writes a real photo, the stylize step exits 0 and writes
    the stylized face, whose colours moved towards the style's and which is drawn sharply (a soft
    blob, what the generator-drawn example faces gave, has a fifth of the edge energy)."""
    from scipy import ndimage

    from hypernst_cli.eval.colour import colour_distance
    from hypernst_cli.io.images import load_image

    scripts, args = readme_first_command()
    photo = tmp_path / "photo.png"
    for script in scripts:
        assert script[0] == "examples/make_photo.py", script
        proc = subprocess.run([sys.executable, *script, "--out", str(photo)], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert args[1] == "examples/photos/astronaut.png"  # make_photo.py's default --out
    args[1] = str(photo)
    out = tmp_path / "stylized.png"
    args[args.index("-o") + 1] = str(out)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
           "HYPERNST_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "hypernst_cli", "--device", "cpu", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    image = load_image(out)
    side = json.loads((EMBEDDED / "config.json").read_text())["generator"]["resolution"]
    assert image.shape == (side, side, 3) and image.std() > 5
    content, style = load_image(photo), load_image(REPO / args[2])
    assert re.search(r"examples/(styles|exemplars)/", args[2])
    small = np.asarray(Image.fromarray(content).resize((side, side), Image.LANCZOS))
    assert colour_distance(style, image)["overall"] < colour_distance(style, small)["overall"]
    edges = np.abs(ndimage.laplace(image.astype(np.float64).mean(-1))).mean()
    assert edges > 8.0, edges
