"""Style codes: global and region-averaged ALADIN codes (paper 3.2, Eq. 1), arranged and mixed.

For a style image ``x`` with region mask ``SM_x``:

- the *global* code is ALADIN on the whole image;
- each region's code is the mean of the ALADIN codes of up to P random square patches whose pixels
  lie in that region at or above a coverage threshold (positions and sizes seeded);
- a region the image lacks (no hair), or an image with no face at all (a landscape, a texture),
  falls back to the global code, as in the paper's interpolation experiment.

The three region codes are then written per pixel onto the *content* image's mask (``arrange``),
giving the code map that the hyper-network's E_mask encodes; the global code is A(s) of Eq. 2.
What conditions one output is a code table [N_REGIONS + 1, D] (:attr:`StyleCodes.table`): the
region codes in REGION_NAMES order, then the global code (row ``GLOBAL_ROW``). Blending and
region mixing act on whole tables, so A(s) follows the style the way the region codes do.

This module is the maths only: tensors in, tensors out, no files, hashes or messages for users.
It lives in pipeline/ rather than models/ because it is where two parts meet (an encoder from
models/, region labels from faces/) and not a network; the cached provider that reads images and
keeps codes on disk is pipeline/code_cache.py, and the ``--region`` / ``--strength`` checks are
the CLI's (cli/options.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from hypernst_cli.configs import StyleCodeConfig
from hypernst_cli.faces.regions import REGION_IDS, REGION_NAMES
from hypernst_cli.io.tensors import to_tensor
from hypernst_cli.models.patches import crop_boxes, region_square_boxes

N_REGIONS = len(REGION_NAMES)
#: the row of a code table that holds the global code A(s)
GLOBAL_ROW = N_REGIONS

#: An encoder maps float images [B, 3, h, w] in [0, 1] (any size) to codes [B, D].
Encoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PatchBox:
    top: int
    left: int
    size: int


@dataclass
class StyleCodes:
    """The codes of one style image: the global code and one code per region."""

    global_code: torch.Tensor  # [D]
    region_codes: torch.Tensor  # [N_REGIONS, D], in REGION_NAMES order
    sources: tuple[str, ...]  # per region: "patches" or "global" (fall-back)
    patches: tuple[tuple[PatchBox, ...], ...] = ()  # kept patches per region
    face_found: bool = True
    meta: dict[str, str] = field(default_factory=dict)
    #: the image's palette table [N_REGIONS + 1, QUANTILES, 3] (``pipeline/palette.region_quantiles``:
    #: Lab quantiles per region, then the whole image's), from the same mask as the codes;
    #: None where nobody needed it (a content's own codes)
    palette: torch.Tensor | None = None
    #: the image's ink table [N_REGIONS + 1, INKS, 3] (``pipeline/palette.region_inks``: its two
    #: main Lab colours per region, then the whole image's); None where the palette is
    inks: torch.Tensor | None = None

    @property
    def dim(self) -> int:
        return int(self.global_code.shape[-1])

    @property
    def table(self) -> torch.Tensor:
        """[N_REGIONS + 1, D]: the region codes, then the global code (what conditions H)."""
        return torch.cat([self.region_codes, self.global_code[None].to(self.region_codes)])

    def fallbacks(self) -> list[str]:
        return [REGION_NAMES[i] for i, s in enumerate(self.sources) if s == "global"]

    def region_similarity(self) -> np.ndarray:
        """Cosine similarity between the region codes (N_REGIONS x N_REGIONS)."""
        c = F.normalize(self.region_codes.float(), dim=1)
        return (c @ c.T).cpu().numpy()


# --- codes -------------------------------------------------------------------------------------


def compute_style_codes(
    image: np.ndarray,
    mask: np.ndarray | None,
    encoder: Encoder,
    cfg: StyleCodeConfig,
    *,
    seed: int | None = None,
    encode_size: int | None = None,
    device: torch.device | str = "cpu",
) -> StyleCodes:
    """Global + region codes of one style image (``mask`` None: no face, everything global).

    All crops (the whole image and every kept patch) go through the encoder in one batch; each is
    resized to ``encode_size`` (the encoder's input size) first so they can be stacked.
    """
    gen = torch.Generator().manual_seed(cfg.seed if seed is None else seed)
    h, w = image.shape[:2]
    size = encode_size or min(h, w)
    full = to_tensor(image, unit=True)[0]
    crops = [full]
    per_region: list[list[PatchBox]] = []
    labels = None if mask is None else torch.tensor(mask)  # a copy: masks may be read-only
    # patch sides from the config's fractions of the short side (at least 2 px)
    lo = max(2, int(round(cfg.patch_min * min(h, w))))
    hi = max(lo, int(round(cfg.patch_max * min(h, w))))
    for region in range(N_REGIONS):
        boxes = torch.zeros(0, 3, dtype=torch.long) if labels is None else region_square_boxes(
            labels, region, cfg.patches_per_region, lo, hi, cfg.coverage, cfg.max_tries, gen)
        per_region.append([PatchBox(*b) for b in boxes.tolist()])
        crops += crop_boxes(full, boxes)
    batch = torch.stack(
        [
            F.interpolate(c[None], size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)[0]
            for c in crops
        ]
    ).to(device)
    with torch.inference_mode():
        codes = encoder(batch).float().cpu()
    global_code = codes[0]
    region_codes = []
    sources = []
    i = 1
    for boxes in per_region:
        if boxes:
            region_codes.append(codes[i : i + len(boxes)].mean(0))
            sources.append("patches")
        else:
            region_codes.append(global_code)
            sources.append("global")
        i += len(boxes)
    return StyleCodes(
        global_code=global_code,
        region_codes=torch.stack(region_codes),
        sources=tuple(sources),
        patches=tuple(tuple(b) for b in per_region),
        face_found=mask is not None,
    )


def arrange(region_codes: torch.Tensor, content_mask: torch.Tensor) -> torch.Tensor:
    """Write region codes per pixel onto content masks: the code map for E_mask.

    region_codes: [N_REGIONS, D] or [B, N_REGIONS, D] (a code table's global row, if present, is
    not arranged); content_mask: [H, W] or [B, H, W] integer labels. Returns [B, D, H, W] where
    pixel (y, x) holds the code of its region, exactly.
    """
    region_codes = region_codes[..., :N_REGIONS, :]
    if region_codes.dim() == 2:
        region_codes = region_codes[None]
    if content_mask.dim() == 2:
        content_mask = content_mask[None]
    if region_codes.shape[0] == 1 and content_mask.shape[0] > 1:
        region_codes = region_codes.expand(content_mask.shape[0], -1, -1)
    if region_codes.shape[0] != content_mask.shape[0]:
        raise ValueError("arrange: batch sizes of codes and masks differ")
    onehot = F.one_hot(content_mask.long().clamp(0, N_REGIONS - 1), N_REGIONS)  # B,H,W,R
    return torch.einsum("bhwr,brd->bdhw", onehot.to(region_codes.dtype), region_codes)


def blend(content: torch.Tensor, style: torch.Tensor, strength: float) -> torch.Tensor:
    """Linear blend from the content's own codes (0) to the style's codes (1).

    A strength outside [0, 1] would extrapolate past either style: a ValueError (the CLI checks
    ``--strength`` itself, with its own message)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {strength}")
    return torch.lerp(content, style, strength)


def mix_regions(sources: Mapping[str, StyleCodes], default: StyleCodes) -> torch.Tensor:
    """A code table [N_REGIONS + 1, D] whose region codes come from different style images.

    ``sources`` maps region names ("hair", "face", "background") to the codes of the image that
    region should take its style from; regions not named, and the global code A(s), come from
    ``default``.
    """
    unknown = set(sources) - set(REGION_NAMES)
    if unknown:  # the CLI's --region parsing names the regions for users (cli/options.py)
        raise ValueError(f"unknown region(s) {', '.join(sorted(unknown))}; "
                         f"use {', '.join(REGION_NAMES)}")
    rows = [sources.get(name, default).region_codes[REGION_IDS[name]] for name in REGION_NAMES]
    rows.append(default.global_code.to(rows[0]))
    return torch.stack(rows)
