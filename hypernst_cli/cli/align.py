"""``hypernst align``: FFHQ-aligned face crops plus a JSON record per face."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from hypernst_cli.cli import faces_batch as fo
from hypernst_cli.cli import options as opt
from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE


@app.command()
def align(
    inputs: list[Path] = typer.Argument(..., help="Image files, folders or globs."),
    output: Path = fo.OUTPUT,
    size: int | None = typer.Option(
        None, "--size",
        help="Crop size in pixels [default: the resolution of the weights --config loads: 256 "
             "for the embedded compact model]."),
    config: str = fo.CONFIG,
    backend: str = fo.BACKEND,
    detector: str = fo.DETECTOR,
    all_faces: bool = typer.Option(False, "--all-faces", help="Every face (NAME_0, NAME_1, ...), not just the largest."),
    overwrite: bool = opt.OVERWRITE,
    sheet: bool = typer.Option(False, "--contact-sheet", help="Also write contact_sheet.png of all crops."),
    recursive: bool = fo.RECURSIVE,
    shard: str | None = opt.SHARD,
    as_json: bool = opt.JSON,
) -> None:
    """Detect faces and write FFHQ-aligned crops (PNG) with their landmarks, box, quad and the
    crop -> photo transform (JSON).

    Exit code 0 when all inputs worked, 1 when some failed, 2 when none did.
    """
    from hypernst_cli.cli.batch import Done, WorkItem, exit_with, run_batch
    from hypernst_cli.faces.processor import FaceProcessor
    from hypernst_cli.io import load_image

    crop_size = fo.resolve_size(size, config, of_weights=True)
    items, shard_spec = fo.face_items(inputs, lambda name: _files(output, name),
                                      recursive=recursive, all_faces=all_faces, shard=shard,
                                      out_dir=output, command="align")
    processor = FaceProcessor(backend=backend, detector=detector, device=STATE.device)

    def work(item: WorkItem) -> Done:
        path, stem = item.payload
        faces = fo.find_faces(processor, load_image(path), crop_size, all_faces=all_faces, source=path)
        names = [fo.face_name(stem, i, all_faces) for i in range(len(faces))]
        for i in fo.marker_last(len(faces)):
            _write_face(faces[i], path, *_files(output, names[i]))
        return _done(output, names)

    def resume(item: WorkItem) -> Done:
        return _done(output, fo.written_faces(item, ".json"))

    summary = run_batch(items, work, overwrite=overwrite, as_json=as_json, description="aligning",
                        resume=resume, list_outputs=True)
    if sheet:
        crops = [fo.read_output(Path(rec["output"])) for r in summary.done() for rec in r.records]
        fo.write_sheet([c for c in crops if c is not None], output, per_row=8, shard=shard_spec)
    exit_with(summary)


def _files(out_dir: Path, name: str) -> list[Path]:
    """A face's crop and its JSON record, in writing order (the record marks the face done)."""
    return [out_dir / f"{name}.png", out_dir / f"{name}.json"]


def _write_face(face: Any, source: Path, png: Path, meta: Path) -> None:
    """One face's crop, then its JSON record (the record marks the face done)."""
    from hypernst_cli.io import atomic_write_text, save_image

    save_image(face.image, png)
    record = {"source": str(source), "image": png.name, **face.to_dict()}
    # one key per line, each value on one line: readable and still plain JSON
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items())
    atomic_write_text(meta, "{\n" + body + "\n}\n")


def _done(out_dir: Path, names: list[str]) -> Any:
    """The batch record of a photo's faces ``names`` (face 0 first): crop and JSON of each."""
    from hypernst_cli.cli.batch import Done

    files = [_files(out_dir, name) for name in names]
    return Done(outputs=[p for pair in files for p in pair],
                records=[{"face": i, "output": str(png), "json": str(meta)}
                         for i, (png, meta) in enumerate(files)])
