"""What ``hypernst align`` and ``hypernst segment`` share on top of the batch runner (cli/batch.py).

Both turn each input photo into one set of files per face, named ``NAME`` (the largest face) or
``NAME_0``, ``NAME_1``, ... (``--all-faces``, largest first). Face 0's files are written last, so
they mark the photo as done for the runner's skip rule. Heavy imports stay inside functions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from hypernst_cli.cli import options as opt

# options both commands take, with one meaning
OUTPUT = typer.Option(..., "--output", "-o", help="Output folder.")
CONFIG = typer.Option(
    "compact", "--config",
    help="Model config whose weights' resolution is the default size (256 px for the embedded compact).")
BACKEND = opt.BACKEND
DETECTOR = typer.Option(
    "hog", "--detector", help="dlib detector: hog (fast) or cnn (finds harder faces, slower).")
RECURSIVE = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders.")


def resolve_size(size: int | None, config: str, *, of_weights: bool = False) -> int:
    """``--size``, else the config's resolution; with ``of_weights`` the resolution of the
    weights ``--config`` loads (align and segment make inputs for them: the embedded compact
    model is 256 px, grown from the 128 px config), rather than the config's own (``train
    prepare``: data for a model trained from the config)."""
    from hypernst_cli.configs import get_config
    from hypernst_cli.errors import UsageError

    if size is None:
        return (_weights_resolution(config) if of_weights else None) or get_config(config).resolution
    if size < 16 or size > 4096:
        raise UsageError(f"--size {size} is out of range", hint="use 16 to 4096 pixels")
    return size


def _weights_resolution(config: str) -> int | None:
    """The resolution in the config of the weights ``--config`` would load (no tensors are
    read); None when there are none."""
    from hypernst_cli.errors import HypernstError
    from hypernst_cli.weights.checkpoint import read_model_config, resolve_weights

    try:
        return int(read_model_config(resolve_weights(None, config).path)["generator"]["resolution"])
    except (HypernstError, OSError, ValueError, KeyError, TypeError):
        return None


def face_items(
    inputs: list[Path],
    files: Callable[[str], list[Path]],
    *,
    recursive: bool,
    all_faces: bool,
    shard: str | None,
    out_dir: Path,
    command: str,
) -> tuple[list[Any], tuple[int, int] | None]:
    """One batch item per photo found in ``inputs`` (this shard's share), and the shard.

    ``files(name)`` are face 0's files. With ``all_faces`` a photo has as many faces as it has,
    so it is done only when its hidden manifest in ``out_dir`` (``.STEM.COMMAND.json``, written
    after the last face) and every face file it lists exist: an interrupted photo or one missing
    a face file is redone. An item's payload is (photo path, output stem).
    """
    from hypernst_cli.cli.batch import WorkItem, check_distinct_outputs, parse_shard, take_shard
    from hypernst_cli.errors import UsageError
    from hypernst_cli.io import collect_images

    paths = collect_images(inputs, recursive=recursive)
    if not paths:
        raise UsageError("no image files found in the given inputs")
    # a rerun would take the last run's crops, masks and overlays for photos
    opt.check_not_an_input_folder(out_dir, list(inputs), recursive=recursive)
    opt.check_output_folder(out_dir)
    part = parse_shard(shard)
    from hypernst_cli.io.inputs import unique_stems

    stems = unique_stems(paths)  # over all photos, so every shard names files the same way
    items = [
        WorkItem(str(p), {"input": str(p)}, files(f"{stems[p]}_0" if all_faces else stems[p]),
                 payload=(p, stems[p]),
                 manifest=out_dir / f".{stems[p]}.{command}.json" if all_faces else None)
        for p in paths
    ]
    check_distinct_outputs(items)  # before the face models load: no output may replace an input
    return take_shard(items, part), part


def find_faces(processor: Any, image: Any, size: int, *, all_faces: bool, source: Path) -> list[Any]:
    """The aligned faces of a photo: every face, or only the largest."""
    if all_faces:
        return processor.align_all(image, size, source=source)
    return [processor.align_largest(image, size, source=source)]


def face_name(stem: str, index: int, all_faces: bool) -> str:
    return f"{stem}_{index}" if all_faces else stem


def marker_last(n_faces: int) -> list[int]:
    """Face indices in writing order: face 0, whose files mark the photo done, comes last."""
    return list(range(1, n_faces)) + [0]


def written_faces(item: Any, suffix: str) -> list[str]:
    """Names of the faces an earlier run wrote for a photo skipped as done, in order: the files
    ``NAME + suffix`` its manifest lists (those of this run, not older files beside them), or
    the photo's one face without --all-faces."""
    from hypernst_cli.cli.batch import read_manifest

    listed = read_manifest(item)
    if listed is None:
        return [item.payload[1]]
    return [p.name[: -len(suffix)] for p in listed if p.name.endswith(suffix)]


def read_output(path: Path) -> Any:
    """An image this command wrote (or None when it is gone), without marking it as an input."""
    from hypernst_cli.io.images import decode_image

    return decode_image(path.read_bytes(), name=path) if path.is_file() else None


def write_sheet(tiles: list[Any], out_dir: Path, *, per_row: int, col_labels: list[str] | None = None,
                shard: tuple[int, int] | None = None) -> Path | None:
    """One contact sheet of ``tiles`` for the output folder: ``contact_sheet.png``, or
    ``contact_sheet_KofN.png`` for shard K of N (shards share the folder). None without tiles."""
    from hypernst_cli.io import save_image
    from hypernst_cli.io.contact_sheet import contact_sheet

    if not tiles:
        return None
    rows = [tiles[i : i + per_row] for i in range(0, len(tiles), per_row)]
    labels = (col_labels * per_row)[:per_row] if col_labels else None
    name = "contact_sheet.png" if shard is None else f"contact_sheet_{shard[0]}of{shard[1]}.png"
    path = out_dir / name
    save_image(contact_sheet(rows, cell=160, col_labels=labels), path)
    return path
