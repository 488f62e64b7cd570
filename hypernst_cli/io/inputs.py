"""Expanding command-line inputs (files, folders, globs) into image paths."""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable
from pathlib import Path

from hypernst_cli.errors import InputError
from hypernst_cli.io.images import IMAGE_SUFFIXES

_GLOB_CHARS = set("*?[")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def collect_images(specs: Iterable[str | Path], *, recursive: bool = False,
                   unique: bool = True) -> list[Path]:
    """Files are kept as given (a bad one fails later, visibly); folders give their images in
    sorted order; globs are expanded and sorted. Duplicates are dropped, order is kept (with
    ``unique`` False they stay: lists zipped item by item)."""
    found: list[Path] = []
    for spec in specs:
        s = str(spec)
        p = Path(s).expanduser()
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            found.extend(sorted(q for q in p.glob(pattern) if q.is_file() and is_image_path(q)))
        elif p.exists():
            found.append(p)
        elif _GLOB_CHARS & set(s):
            matches = sorted(Path(m) for m in glob.glob(s, recursive=True))
            files = [m for m in matches if m.is_file() and is_image_path(m)]
            if not files:
                raise InputError(s, "the pattern matches no image files")
            found.extend(files)
        else:
            raise InputError(s, "no such file or folder")
    if not unique:
        return found
    seen: set[Path] = set()
    kept = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            kept.append(f)
    return kept


def file_sha256(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (cache keys, weight verification)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def unique_stems(paths: list[Path]) -> dict[Path, str]:
    """A unique output stem per input: the file stem; where stems clash, the folder's name before
    it, then the extension after it (``face.png`` and ``face.jpg`` in one folder), then the
    folder above. Each name depends on the inputs given, not on their order, so a rerun over the
    same files in another order resumes with the same names."""
    from collections import Counter

    def names(p: Path) -> list[str]:
        ext = p.suffix.lstrip(".").lower()
        return [p.stem, f"{p.parent.name}_{p.stem}", f"{p.parent.name}_{p.stem}_{ext}",
                f"{p.parent.parent.name}_{p.parent.name}_{p.stem}_{ext}"]

    paths = list(dict.fromkeys(paths))  # a repeat (stylize --pairs) is the same input: one name
    options = {p: names(p) for p in paths}
    counts = [Counter(o[level] for o in options.values()) for level in range(4)]
    stems: dict[Path, str] = {}
    used: set[str] = set()
    for p in paths:
        stem = next((o for level, o in enumerate(options[p]) if counts[level][o] == 1),
                    options[p][-1])
        base, n = stem, 1
        while stem in used:  # a clash between levels ("x_face" the file and the prefixed one)
            n += 1
            stem = f"{base}-{n}"
        used.add(stem)
        stems[p] = stem
    return stems
