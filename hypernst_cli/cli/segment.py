"""``hypernst segment``: 3-region masks (background 0, face 1, hair 2) and overlays to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hypernst_cli.cli.app import app
from hypernst_cli.cli.faces_batch import BACKEND_HELP, DETECTOR_HELP
from hypernst_cli.cli.state import STATE


@app.command()
def segment(
    inputs: list[Path] = typer.Argument(..., help="Image files, folders or globs."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder."),
    do_align: bool = typer.Option(
        False, "--align", help="Align each face first and segment the crop (as the models see it)."
    ),
    size: int | None = typer.Option(None, "--size", help="Crop size with --align [default: the config's resolution]."),
    config: str = typer.Option("compact", "--config", help="Model config whose resolution is the default size."),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    detector: str = typer.Option("hog", "--detector", help=DETECTOR_HELP),
    all_faces: bool = typer.Option(False, "--all-faces", help="Every face (implies --align; NAME_0, NAME_1, ...)."),
    skip_existing: bool = typer.Option(True, "--skip-existing/--overwrite", help="Keep outputs that are already there."),
    sheet: bool = typer.Option(False, "--contact-sheet", help="Also write contact_sheet.png (image | overlay pairs)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per output."),
) -> None:
    """Write NAME_mask.png (region labels: 0 background, 1 face, 2 hair) and NAME_overlay.png (the
    regions tinted over the image) for each input.

    Without --align the mask is in the input's own coordinates (meant for portraits that are
    already aligned, such as style images); with --align the face is aligned first and the crop is
    written too (NAME_aligned.png). Exit code 0 when all inputs worked, 1 when some failed, 2 when
    none did.
    """
    from hypernst_cli.cli.faces_batch import finish, output_stems, resolve_size, run_batch, write_sheet
    from hypernst_cli.errors import UsageError
    from hypernst_cli.faces.processor import FaceProcessor
    from hypernst_cli.io import collect_images, load_image

    aligning = do_align or all_faces
    crop_size = resolve_size(size, config)
    paths = collect_images(inputs, recursive=recursive)
    if not paths:
        raise UsageError("no image files found in the given inputs")
    processor = FaceProcessor(backend=backend, detector=detector, device=STATE.device)
    stems = output_stems(paths)
    tiles: list[Any] = []

    def work(path: Path) -> list[dict[str, Any]]:
        stem = stems[path]
        first = f"{stem}_0" if all_faces else stem
        if skip_existing and (output / f"{first}_overlay.png").exists():
            return _skipped(path, output, stem, all_faces, aligning, tiles if sheet else None)
        image = load_image(path)
        if not aligning:
            pictures = [(stem, image, processor.parse_image(image), None)]
        else:
            faces = processor.align_all(image, crop_size) if all_faces else [
                processor.align_largest(image, crop_size)
            ]
            pictures = [
                (f"{stem}_{f.index}" if all_faces else stem, f.image, processor.parse(f), f.index)
                for f in faces
            ]
        records = {}
        # the first overlay is the completion marker: written last
        for k in list(range(1, len(pictures))) + [0]:
            name, img, labels, index = pictures[k]
            records[k] = _write(path, output, name, img, labels, index, aligned=aligning)
            if sheet:
                tiles.append((k, img, labels))
        return [records[k] for k in range(len(pictures))]

    code = run_batch(paths, work, as_json=as_json, label="segmenting")
    if sheet and tiles:
        from hypernst_cli.faces.visual import overlay

        flat: list[Any] = []
        for _, img, labels in tiles:
            flat += [img, overlay(img, labels)]
        write_sheet(flat, output, per_row=8, col_labels=["image", "regions"])
    finish(code)


def _write(source: Path, out_dir: Path, name: str, image: Any, labels: Any, index: int | None,
           *, aligned: bool) -> dict[str, Any]:
    import numpy as np

    from hypernst_cli.faces.visual import overlay
    from hypernst_cli.io import save_image

    mask_path = out_dir / f"{name}_mask.png"
    overlay_path = out_dir / f"{name}_overlay.png"
    if aligned:
        save_image(image, out_dir / f"{name}_aligned.png")
    save_image(labels, mask_path)
    save_image(overlay(image, labels), overlay_path)
    counts = np.bincount(np.asarray(labels).ravel(), minlength=3)[:3] / labels.size
    return {
        "input": str(source), "ok": True, "face": index, "output": str(mask_path),
        "overlay": str(overlay_path),
        "fractions": {"background": round(float(counts[0]), 4), "face": round(float(counts[1]), 4),
                      "hair": round(float(counts[2]), 4)},
    }


def _skipped(path: Path, out_dir: Path, stem: str, all_faces: bool, aligned: bool,
             tiles: list[Any] | None) -> list[dict[str, Any]]:
    from hypernst_cli.io import load_image
    from hypernst_cli.io.images import decode_image

    if all_faces:
        found = [p for p in out_dir.glob(f"{stem}_*_overlay.png")
                 if p.name[len(stem) + 1 : -len("_overlay.png")].isdigit()]
        names = sorted((p.name[: -len("_overlay.png")] for p in found),
                       key=lambda n: int(n[len(stem) + 1 :]))
    else:
        names = [stem]
    records = []
    for i, name in enumerate(names):
        mask = out_dir / f"{name}_mask.png"
        overlay_png = out_dir / f"{name}_overlay.png"
        records.append({"input": str(path), "ok": True, "skipped": True, "face": i if all_faces else None,
                        "output": str(mask), "overlay": str(overlay_png)})
        picture = out_dir / f"{name}_aligned.png" if aligned else path
        if tiles is not None and mask.exists() and picture.exists():
            labels = decode_image(mask.read_bytes(), name=mask)[..., 0]
            pic = decode_image(picture.read_bytes(), name=picture) if aligned else load_image(picture)
            if pic.shape[:2] == labels.shape:
                tiles.append((i, pic, labels))
    return records
