"""Training data: the folder `hypernst prepare` writes, and a resumable, shardable sampler.

Layout of a prepared folder::

    DATA/prepare.json            settings and counts
    DATA/report.jsonl            one line per input: ok, or rejected with the reason
    DATA/content/NAME.png        aligned face (RGB, the config's resolution)
    DATA/content/NAME.mask.png   region labels 0 background, 1 face, 2 hair
    DATA/style/NAME.png          aligned style image
    DATA/style/NAME.mask.png     its region labels (absent when no face was found)

The sampler walks seeded per-epoch permutations; its whole state is one integer (samples
consumed), so a resumed run continues with exactly the batches it would have seen. Under DDP each
rank takes its slice of every global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hypernst_cli.errors import UsageError
from hypernst_cli.io.tensors import to_tensor


@dataclass
class Sample:
    name: str
    image: Path
    mask: Path | None


class ImageSet:
    """Aligned images (and masks) of one split of a prepared folder, loaded lazily."""

    def __init__(self, folder: Path, resolution: int) -> None:
        self.folder = Path(folder)
        self.resolution = resolution
        if not self.folder.is_dir():
            raise UsageError(f"{self.folder}: no such folder",
                             hint="create it with `hypernst prepare CONTENT STYLE -o DATA`")
        self.samples = [
            Sample(p.stem, p, m if (m := p.with_name(p.stem + ".mask.png")).exists() else None)
            for p in sorted(self.folder.glob("*.png"))
            if not p.name.endswith(".mask.png")
        ]
        if not self.samples:
            raise UsageError(f"{self.folder}: no prepared images",
                             hint="run `hypernst prepare` first")
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image uint8 HxWx3, mask uint8 HxW) at the set's resolution; cached in memory."""
        if index not in self._cache:
            from PIL import Image

            from hypernst_cli.io import load_image

            s = self.samples[index]
            img = load_image(s.image)
            if img.shape[0] != self.resolution or img.shape[1] != self.resolution:
                img = np.asarray(Image.fromarray(img).resize(
                    (self.resolution, self.resolution), Image.Resampling.LANCZOS))
            if s.mask is not None:
                mask = np.asarray(Image.open(s.mask).convert("L").resize(
                    (self.resolution, self.resolution), Image.Resampling.NEAREST))
            else:
                mask = np.zeros(img.shape[:2], np.uint8)  # no face: all background
            self._cache[index] = (img, mask)
        return self._cache[index]


class ResumableSampler:
    """Indices from seeded per-epoch permutations; state = samples consumed so far."""

    def __init__(self, n: int, seed: int, *, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.position = 0
        self._epoch = -1
        self._perm = np.arange(n)

    def _index(self, global_pos: int) -> int:
        epoch, offset = divmod(global_pos, self.n)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._epoch = epoch
        return int(self._perm[offset])

    def next_batch(self, batch_size: int) -> list[int]:
        """This rank's share of the next global batch (batch_size per rank)."""
        total = batch_size * self.world
        start = self.position + self.rank * batch_size
        idx = [self._index(start + i) for i in range(batch_size)]
        self.position += total
        return idx


def make_batch(
    data: ImageSet, indices: list[int], *, flip_seed: int | None = None, position: int = 0
) -> dict[str, torch.Tensor | list[str]]:
    """Images [-1, 1], masks (long) and names; optional deterministic horizontal flips."""
    images, masks, names = [], [], []
    for j, i in enumerate(indices):
        img, mask = data.load(i)
        if flip_seed is not None and np.random.default_rng([flip_seed, position, j]).random() < 0.5:
            img, mask = img[:, ::-1], mask[:, ::-1]
        images.append(np.ascontiguousarray(img))
        masks.append(np.ascontiguousarray(mask))
        names.append(data.samples[i].name)
    return {
        "image": to_tensor(images),
        "mask": torch.from_numpy(np.stack(masks)).long(),
        "name": names,
    }
