"""``hypernst segment``: 3-region masks (background 0, face 1, hair 2) and overlays to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hypernst_cli.cli import faces_batch as fo
from hypernst_cli.cli import options as opt
from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE


@app.command()
def segment(
    inputs: list[Path] = typer.Argument(..., help="Image files, folders or globs."),
    output: Path = fo.OUTPUT,
    do_align: bool = typer.Option(
        False, "--align", help="Align each face first and segment the crop (as the models see it)."
    ),
    size: int | None = typer.Option(
        None, "--size",
        help="Crop size with --align [default: the resolution of the weights --config loads: "
             "256 for the embedded compact model]."),
    config: str = fo.CONFIG,
    backend: str = fo.BACKEND,
    detector: str = fo.DETECTOR,
    all_faces: bool = typer.Option(False, "--all-faces", help="Every face (implies --align; NAME_0, NAME_1, ...)."),
    overwrite: bool = opt.OVERWRITE,
    sheet: bool = typer.Option(False, "--contact-sheet", help="Also write contact_sheet.png (image | overlay pairs)."),
    recursive: bool = fo.RECURSIVE,
    shard: str | None = opt.SHARD,
    as_json: bool = opt.JSON,
) -> None:
    """Write NAME_mask.png (region labels: 0 background, 1 face, 2 hair) and NAME_overlay.png (the
    regions tinted over the image) for each input.

    Without --align the mask is in the input's own coordinates (meant for portraits that are
    already aligned, such as style images); with --align the face is aligned first and the crop is
    written too (NAME_aligned.png). Exit code 0 when all inputs worked, 1 when some failed, 2 when
    none did.
    """
    from hypernst_cli.cli.batch import Done, WorkItem, exit_with, run_batch
    from hypernst_cli.faces.processor import FaceProcessor
    from hypernst_cli.io import load_image

    aligning = do_align or all_faces
    crop_size = fo.resolve_size(size, config, of_weights=True)
    items, shard_spec = fo.face_items(inputs, lambda name: _files(output, name, aligning),
                                      recursive=recursive, all_faces=all_faces, shard=shard,
                                      out_dir=output, command="segment")
    processor = FaceProcessor(backend=backend, detector=detector, device=STATE.device)

    def work(item: WorkItem) -> Done:
        path, stem = item.payload
        image = load_image(path)
        if not aligning:
            pictures = [(stem, image, processor.parse_image(image, source=path))]
        else:
            faces = fo.find_faces(processor, image, crop_size, all_faces=all_faces, source=path)
            pictures = [(fo.face_name(stem, f.index, all_faces), f.image, processor.parse(f))
                        for f in faces]
        fractions = {}
        for k in fo.marker_last(len(pictures)):
            name, picture, labels = pictures[k]
            fractions[k] = _write(picture, labels, *_files(output, name, aligning))
        done = _done(output, [name for name, _, _ in pictures], aligning)
        for k, rec in enumerate(done.records):
            rec["fractions"] = fractions[k]
        return done

    def resume(item: WorkItem) -> Done:
        return _done(output, fo.written_faces(item, "_overlay.png"), aligning)

    summary = run_batch(items, work, overwrite=overwrite, as_json=as_json, description="segmenting",
                        resume=resume, list_outputs=True)
    if sheet:
        tiles: list[Any] = []
        for r in summary.done():
            for rec in r.records:
                picture = fo.read_output(Path(rec["aligned"])) if aligning else load_image(r.item.payload[0])
                shown = fo.read_output(Path(rec["overlay"]))
                if picture is not None and shown is not None:
                    tiles += [picture, shown]
        fo.write_sheet(tiles, output, per_row=8, col_labels=["image", "regions"], shard=shard_spec)
    exit_with(summary)


def _files(out_dir: Path, name: str, aligned: bool) -> list[Path]:
    """A face's files in writing order: [the aligned crop,] the mask, the overlay (the overlay
    marks the face done)."""
    names = ([f"{name}_aligned.png"] if aligned else []) + [f"{name}_mask.png", f"{name}_overlay.png"]
    return [out_dir / n for n in names]


def _write(image: Any, labels: Any, *paths: Path) -> dict[str, float]:
    """Write [the crop,] the mask and the overlay; returns the regions' area fractions."""
    import numpy as np

    from hypernst_cli.faces.visual import overlay
    from hypernst_cli.io import save_image

    *crop, mask_path, overlay_path = paths
    if crop:
        save_image(image, crop[0])
    save_image(labels, mask_path)
    save_image(overlay(image, labels), overlay_path)
    counts = np.bincount(np.asarray(labels).ravel(), minlength=3)[:3] / labels.size
    return {"background": round(float(counts[0]), 4), "face": round(float(counts[1]), 4),
            "hair": round(float(counts[2]), 4)}


def _done(out_dir: Path, names: list[str], aligned: bool) -> Any:
    """The batch record of a photo's faces ``names`` (face 0 first): mask, overlay [and crop]."""
    from hypernst_cli.cli.batch import Done

    done = Done()
    for i, name in enumerate(names):
        files = _files(out_dir, name, aligned)
        done.outputs += files
        record: dict[str, Any] = {"face": i if aligned else None, "output": str(files[-2]),
                                  "overlay": str(files[-1])}
        if aligned:
            record["aligned"] = str(files[0])
        done.records.append(record)
    return done
