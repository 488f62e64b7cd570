"""The example exemplars are what examples/make_exemplars.py draws, in the families it names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from hypernst_cli.io.images import load_image
from hypernst_cli.styles.families import EVAL_SEED_BASE, HELDOUT_FAMILIES, TRAIN_FAMILIES

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _script():
    spec = importlib.util.spec_from_file_location("make_exemplars", EXAMPLES / "make_exemplars.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exemplars_are_the_scripts_draws(tmp_path: Path) -> None:
    script = _script()
    assert script.main(["--out", str(tmp_path)]) == 0
    families = {family for _, family, _ in script.EXEMPLARS}
    assert families & set(HELDOUT_FAMILIES) and families & set(TRAIN_FAMILIES)
    # draws training never samples, so even the training family's exemplar is an unseen draw
    assert all(seed >= EVAL_SEED_BASE for _, _, seed in script.EXEMPLARS)
    for stem, _, _ in script.EXEMPLARS:
        drawn = load_image(tmp_path / f"{stem}.png").astype(np.float32)
        shipped = load_image(EXAMPLES / "exemplars" / f"{stem}.png").astype(np.float32)
        assert drawn.shape == shipped.shape == (256, 256, 3)
        assert np.abs(drawn - shipped).mean() < 1.0, stem
        assert drawn.std() > 20  # a picture, not a flat fill
