"""``hypernst align``: FFHQ-aligned face crops plus a JSON record per face."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from hypernst_cli.cli.app import app
from hypernst_cli.cli.faces_batch import BACKEND_HELP, DETECTOR_HELP
from hypernst_cli.cli.state import STATE


@app.command()
def align(
    inputs: list[Path] = typer.Argument(..., help="Image files, folders or globs."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder."),
    size: int | None = typer.Option(None, "--size", help="Crop size in pixels [default: the config's resolution]."),
    config: str = typer.Option("compact", "--config", help="Model config whose resolution is the default size."),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    detector: str = typer.Option("hog", "--detector", help=DETECTOR_HELP),
    all_faces: bool = typer.Option(False, "--all-faces", help="Every face (NAME_0, NAME_1, ...), not just the largest."),
    skip_existing: bool = typer.Option(True, "--skip-existing/--overwrite", help="Keep outputs that are already there."),
    sheet: bool = typer.Option(False, "--contact-sheet", help="Also write contact_sheet.png of all crops."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per output."),
) -> None:
    """Detect faces and write FFHQ-aligned crops (PNG) with their landmarks, box, quad and the
    crop -> photo transform (JSON).

    Exit code 0 when all inputs worked, 1 when some failed, 2 when none did.
    """
    from hypernst_cli.cli.faces_batch import finish, output_stems, resolve_size, run_batch, write_sheet
    from hypernst_cli.errors import UsageError
    from hypernst_cli.faces.processor import FaceProcessor
    from hypernst_cli.io import collect_images, load_image

    crop_size = resolve_size(size, config)
    paths = collect_images(inputs, recursive=recursive)
    if not paths:
        raise UsageError("no image files found in the given inputs")
    processor = FaceProcessor(backend=backend, detector=detector, device=STATE.device)
    stems = output_stems(paths)
    tiles: list[Any] = []

    def work(path: Path) -> list[dict[str, Any]]:
        stem = stems[path]
        done = output / (f"{stem}_0.json" if all_faces else f"{stem}.json")
        if skip_existing and done.exists():
            return _skipped(path, output, stem, all_faces, tiles if sheet else None)
        image = load_image(path)
        faces = processor.align_all(image, crop_size) if all_faces else [
            processor.align_largest(image, crop_size)
        ]
        # face 0's JSON is the completion marker: written last
        order = list(range(1, len(faces))) + [0]
        records = {}
        for i in order:
            records[i] = _write_face(faces[i], path, output, stem if not all_faces else f"{stem}_{i}")
        if sheet:
            tiles.extend(f.image for f in faces)
        return [records[i] for i in range(len(faces))]

    code = run_batch(paths, work, as_json=as_json, label="aligning")
    if sheet and tiles:
        write_sheet(tiles, output, per_row=8)
    finish(code)


def _write_face(face: Any, source: Path, out_dir: Path, name: str) -> dict[str, Any]:
    from hypernst_cli.io import atomic_write_text, save_image

    png = out_dir / f"{name}.png"
    meta = out_dir / f"{name}.json"
    save_image(face.image, png)
    record = {"source": str(source), "image": png.name, **face.to_dict()}
    # one key per line, each value on one line: readable and still plain JSON
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items())
    atomic_write_text(meta, "{\n" + body + "\n}\n")
    return {"input": str(source), "ok": True, "face": face.index, "output": str(png), "json": str(meta)}


def _skipped(path: Path, out_dir: Path, stem: str, all_faces: bool, tiles: list[Any] | None) -> list[dict[str, Any]]:
    if all_faces:
        found = [p for p in out_dir.glob(f"{stem}_*.json") if p.stem[len(stem) + 1 :].isdigit()]
        names = sorted(found, key=lambda p: int(p.stem[len(stem) + 1 :]))
    else:
        names = [out_dir / f"{stem}.json"]
    records = []
    for i, meta in enumerate(names):
        png = meta.with_suffix(".png")
        records.append({"input": str(path), "ok": True, "skipped": True, "face": i, "output": str(png), "json": str(meta)})
        if tiles is not None and png.exists():
            from hypernst_cli.io.images import decode_image

            tiles.append(decode_image(png.read_bytes(), name=png))
    return records
