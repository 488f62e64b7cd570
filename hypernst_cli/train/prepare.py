"""``hypernst prepare``: align and parse a content set and a style set into a training folder.

Layout: see ``hypernst_cli.train.data``. Content photos are aligned (largest face) and parsed;
one without a face, or unreadable, is rejected. Style images are aligned and parsed when a face
is found; otherwise they are KEPT (centre-cropped, resized, no mask file: the global ALADIN code
everywhere, as for the paper's non-portrait styles) and reported. Every input gets a line in
report.jsonl. Resumable: an image whose PNG exists is skipped (the PNG is written after its mask,
so it marks completion).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hypernst_cli.errors import NoFaceError

SPLITS = ("content", "style")


@dataclass
class PrepareOutcome:
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per input, for report.jsonl
    exit_code: int = 0


def centre_square(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS))


def save_mask(mask: np.ndarray, path: Path) -> None:
    from PIL import Image

    from hypernst_cli.io import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="L").save(tmp, format="PNG")


def prepare_split(split: str, paths: list[Path], out: Path, size: int, faces: Any, *,
                  as_json: bool = False, overwrite: bool = False) -> PrepareOutcome:
    """Align + parse one split with the batch runner's rules; returns the report rows."""
    from hypernst_cli.cli.batch import WorkItem, run_batch
    from hypernst_cli.io.inputs import unique_stems
    from hypernst_cli.io import load_image, save_image

    folder = out / split
    folder.mkdir(parents=True, exist_ok=True)
    stems = unique_stems(paths)
    kept_without_face: set[str] = set()

    def work(item: WorkItem) -> dict[str, float]:
        path, stem = item.payload
        image = load_image(path)
        mask_path = folder / f"{stem}.mask.png"
        try:
            aligned = faces.align_largest(image, size, source=path)
            crop, mask = aligned.image, faces.parse(aligned)
        except NoFaceError:
            if split == "content":
                raise  # a content image needs its face
            kept_without_face.add(stem)
            crop, mask = centre_square(image, size), None
        if mask is not None:
            save_mask(mask, mask_path)
        else:
            mask_path.unlink(missing_ok=True)
        save_image(crop, folder / f"{stem}.png")  # last: marks the item complete
        return {}

    items = [WorkItem(label=str(p), inputs={"split": split, "input": str(p)},
                      outputs=[folder / f"{stems[p]}.png"], payload=(p, stems[p])) for p in paths]
    summary = run_batch(items, work, overwrite=overwrite, as_json=as_json,
                        description=f"preparing {split}", raise_single=False)
    outcome = PrepareOutcome(exit_code=summary.exit_code)
    for r in summary.results:
        _, stem = r.item.payload
        row: dict[str, Any] = {"split": split, "input": r.item.inputs["input"], "name": stem}
        if r.status == "failed":
            row.update(status="rejected", reason=r.error)
        else:
            has_mask = (folder / f"{stem}.mask.png").exists()
            row.update(status="ok" if has_mask else "kept_no_face", mask=has_mask,
                       skipped=r.status == "skipped")
            if not has_mask:
                row["reason"] = "no face found: kept without a mask (global style code everywhere)"
        outcome.rows.append(row)
    return outcome


def write_report(out: Path, rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    from hypernst_cli.io import atomic_write_text

    atomic_write_text(out / "report.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    counts = {split: {s: sum(1 for r in rows if r["split"] == split and r["status"] == s)
                      for s in ("ok", "kept_no_face", "rejected")} for split in SPLITS}
    info = {**settings, "counts": counts}
    atomic_write_text(out / "prepare.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def cache_codes(out: Path, weights: str, config: str | None, device: Any) -> dict[str, Any]:
    """Region codes of every prepared image with the model's ALADIN, cached under DATA/codes
    (exactly where the training stages look for them)."""
    from hypernst_cli.pipeline.code_cache import style_code_provider
    from hypernst_cli.pipeline.models import load_models
    from hypernst_cli.train.common import PreparedMasks, code_tables
    from hypernst_cli.train.data import ImageSet

    models = load_models(weights, config, device, parts=("aladin",))
    sets = [ImageSet(out / s, models.config.resolution) for s in SPLITS if any((out / s).glob("*.png"))]
    samples = [s for d in sets for s in d.samples]
    # ALADIN's hash from its module, as the training stages compute it: the same cache keys
    provider = style_code_provider(models.aladin, models.config, PreparedMasks(samples),
                                   cache_dir=out, device=device)
    code_tables(provider, samples)
    return {"codes_model": provider.model_id, "codes_computed": provider.computed,
            "codes_images": len(samples)}
