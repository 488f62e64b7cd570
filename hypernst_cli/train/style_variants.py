"""Colour variants of the style images: stage 2's augmentation for small style sets.

With a few dozen art portraits, most of them colourful, the hyper-network sees too few points
of the style-code space to learn what a code says about colour: on held-out styles it tinted
the output of a grey pencil drawing pink and green. Each style image therefore also comes as
``k`` colour-graded copies (pseudo_styles.colour_grade: tone curves, a colour mix, a
saturation change; a third of them monochrome), each with its own ALADIN codes computed on the
original's mask. The grade of copy j of image i is fixed by (seed, i, j), so a resumed run and a
rerun see the same copies, and their codes are cached like any other.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import torch

from hypernst_cli.io.tensors import to_tensor, to_uint8
from hypernst_cli.train.data import ImageSet, Sample
from hypernst_cli.train.pseudo_styles import colour_grade

if TYPE_CHECKING:
    from hypernst_cli.pipeline.code_cache import StyleCodeProvider

#: share of the copies that are monochrome (saturation 0): the colour-space corner art sets
#: cover least and that a colourful generator misses most
MONOCHROME_SHARE = 1 / 3


def graded_copy(image: np.ndarray, gen: torch.Generator) -> np.ndarray:
    """One random colour grade of an RGB uint8 image (parameters drawn from ``gen``)."""
    monochrome = float(torch.rand(1, generator=gen)) < MONOCHROME_SHARE
    y = colour_grade(to_tensor(image, unit=True), gen, saturation=0.0 if monochrome else None)
    return to_uint8(y, unit=True)[0]


class StyleVariants:
    """An ImageSet's images, each followed by ``k`` graded copies (same mask); index
    ``i * (k + 1) + j`` is copy j of image i, copy 0 the image itself."""

    def __init__(self, base: ImageSet, k: int, seed: int) -> None:
        if k < 0:
            raise ValueError("the number of copies must be >= 0")
        self.base, self.k, self.seed = base, k, seed
        self.samples: list[Sample] = [
            s if j == 0 else Sample(f"{s.name}~grade{j}", s.image, s.mask)
            for s in base.samples for j in range(k + 1)
        ]
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image uint8 HxWx3, mask uint8 HxW), as ImageSet.load."""
        i, j = divmod(index, self.k + 1)
        if j == 0:
            return self.base.load(i)
        if index not in self._cache:
            image, mask = self.base.load(i)
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i * 1_009 + j)
            self._cache[index] = (graded_copy(image, gen), mask)
        return self._cache[index]

    def code_table(self, provider: StyleCodeProvider) -> torch.Tensor:
        """[N, 4, D] code tables (region codes, global code) of every image and copy (a copy's codes are computed on its
        original's mask, and cached under the sha256 of its pixels)."""
        rows = []
        for index, sample in enumerate(self.samples):
            if index % (self.k + 1) == 0:  # the original: its file's (cached) codes
                rows.append(provider.for_file(sample.image).table.float())
                continue
            image, mask = self.load(index)
            sha = hashlib.sha256(b"graded-copy:" + image.tobytes()).hexdigest()
            codes = provider.for_image(image, sha=sha, mask=mask if sample.mask is not None else None)
            rows.append(codes.table.float())
        return torch.stack(rows)
