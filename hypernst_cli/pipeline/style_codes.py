"""Style codes: global and region-averaged ALADIN codes (paper 3.2, Eq. 1), arranged, mixed, cached.

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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hypernst_cli.configs import StyleCodeConfig
from hypernst_cli.errors import NoFaceError, UsageError
from hypernst_cli.faces.regions import REGION_IDS, REGION_NAMES
from hypernst_cli.models.patches import SAMPLER_VERSION, crop_boxes, region_square_boxes

N_REGIONS = len(REGION_NAMES)
#: the row of a code table that holds the global code A(s)
GLOBAL_ROW = N_REGIONS

#: An encoder maps float images [B, 3, h, w] in [0, 1] (any size) to codes [B, D].
Encoder = Callable[[torch.Tensor], torch.Tensor]
#: A parser maps an RGB uint8 image to a uint8 region mask (H, W), or raises NoFaceError.
Parser = Callable[[np.ndarray], np.ndarray]


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


def _to_tensor01(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0)


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
    full = _to_tensor01(image)
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
    """Linear blend from the content's own codes (0) to the style's codes (1)."""
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--strength must be between 0 and 1, got {strength}")
    return torch.lerp(content, style, strength)


def mix_regions(sources: Mapping[str, StyleCodes], default: StyleCodes) -> torch.Tensor:
    """A code table [N_REGIONS + 1, D] whose region codes come from different style images.

    ``sources`` maps region names ("hair", "face", "background") to the codes of the image that
    region should take its style from; regions not named, and the global code A(s), come from
    ``default``.
    """
    rows = []
    for name in REGION_NAMES:
        src = sources.get(name, default)
        rows.append(src.region_codes[REGION_IDS[name]])
    rows.append(default.global_code.to(rows[0]))
    unknown = set(sources) - set(REGION_NAMES)
    if unknown:
        raise UsageError(
            f"unknown region(s) {', '.join(sorted(unknown))}",
            hint=f"use {', '.join(REGION_NAMES)}",
        )
    return torch.stack(rows)


def parse_region_spec(spec: str) -> dict[str, str]:
    """Parse ``hair=a.png,face=b.png,background=c.png`` into a dict (paths not checked here)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or not value.strip():
            raise UsageError(f"invalid region spec '{part}'", hint="use REGION=STYLE_IMAGE, e.g. hair=a.png")
        if name not in REGION_IDS:
            raise UsageError(f"unknown region '{name}'", hint=f"use {', '.join(REGION_NAMES)}")
        out[name] = value.strip()
    if not out:
        raise UsageError("empty region spec", hint="e.g. hair=a.png,face=b.png")
    return out


# --- the cached provider -----------------------------------------------------------------------


class StyleCodeProvider:
    """Style codes per style image, computed once: in memory for the run, on disk across runs.

    The disk cache key covers everything the codes depend on: the sha256 of the image bytes, the
    encoder's model id, the parser id and the sampling settings (P, patch sizes, threshold, seed,
    the sampler's version).
    A changed image or model therefore never reuses stale codes.
    """

    def __init__(
        self,
        encoder: Encoder,
        parser: Parser | None,
        cfg: StyleCodeConfig,
        *,
        model_id: str,
        parser_id: str = "none",
        encode_size: int | None = None,
        cache_dir: Path | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.encoder = encoder
        self.parser = parser
        self.cfg = cfg
        self.model_id = model_id
        self.parser_id = parser_id
        self.encode_size = encode_size
        self.cache_dir = cache_dir
        self.device = device
        self._memory: dict[str, StyleCodes] = {}
        self.computed = 0  # how many images went through the encoder (for reports and tests)

    def settings(self) -> dict[str, str]:
        c = self.cfg
        return {
            "model_id": self.model_id,
            "parser_id": self.parser_id,
            "patches_per_region": str(c.patches_per_region),
            "patch_min": repr(c.patch_min),
            "patch_max": repr(c.patch_max),
            "coverage": repr(c.coverage),
            "max_tries": str(c.max_tries),
            "seed": str(c.seed),
            "sampler": SAMPLER_VERSION,  # the positions a seed gives (models/patches.py)
            "encode_size": str(self.encode_size),
        }

    def cache_key(self, image_sha256: str) -> str:
        blob = json.dumps({"image": image_sha256, **self.settings()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def cache_path(self, image_sha256: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / "codes" / f"{self.cache_key(image_sha256)}.safetensors"

    def for_file(self, path: str | Path) -> StyleCodes:
        from hypernst_cli.io import load_image
        from hypernst_cli.io.inputs import file_sha256

        sha = file_sha256(path)
        if sha in self._memory:
            return self._memory[sha]
        codes = self._load(sha)
        if codes is None:
            image = load_image(path)
            codes = self.for_image(image, sha=sha)
        codes.meta.setdefault("source", str(path))
        self._memory[sha] = codes
        return codes

    def for_image(self, image: np.ndarray, *, sha: str | None = None,
                  mask: np.ndarray | None = None) -> StyleCodes:
        """Codes of an in-memory image (cached under ``sha`` when given). ``mask``: its region
        labels when already known (a parsed content face), else the parser runs."""
        if sha is not None:
            if sha in self._memory:
                return self._memory[sha]
            cached = self._load(sha)
            if cached is not None:
                self._memory[sha] = cached
                return cached
        if mask is None and self.parser is not None:
            try:
                mask = self.parser(image)
            except NoFaceError:
                mask = None
        codes = compute_style_codes(
            image, mask, self.encoder, self.cfg, encode_size=self.encode_size, device=self.device
        )
        self.computed += 1
        codes.meta.update(self.settings())
        if sha is not None:
            codes.meta["image_sha256"] = sha
            self._save(sha, codes)
            self._memory[sha] = codes
        return codes

    # safetensors with the settings as metadata; written atomically
    def _save(self, sha: str, codes: StyleCodes) -> None:
        path = self.cache_path(sha)
        if path is None:
            return
        from safetensors.torch import save_file

        from hypernst_cli.io.atomic import atomic_path

        meta = dict(codes.meta)
        meta["sources"] = ",".join(codes.sources)
        meta["face_found"] = str(codes.face_found)
        meta["patches"] = json.dumps([[[b.top, b.left, b.size] for b in r] for r in codes.patches])
        tensors = {"global": codes.global_code.contiguous(), "regions": codes.region_codes.contiguous()}
        try:
            with atomic_path(path) as tmp:
                save_file(tensors, str(tmp), metadata=meta)
        except OSError:
            return  # a read-only cache only costs speed
        codes.meta["cache"] = str(path)

    def _load(self, sha: str) -> StyleCodes | None:
        path = self.cache_path(sha)
        if path is None or not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                glob = fh.get_tensor("global")
                regions = fh.get_tensor("regions")
        except Exception:  # noqa: BLE001 - a corrupt cache entry is recomputed
            return None
        expected = {**self.settings(), "image_sha256": sha}
        if any(meta.get(k) != v for k, v in expected.items()):
            return None
        patches = tuple(
            tuple(PatchBox(*b) for b in r) for r in json.loads(meta.get("patches", "[]"))
        )
        codes = StyleCodes(
            global_code=glob,
            region_codes=regions,
            sources=tuple(meta.get("sources", "").split(",")),
            patches=patches,
            face_found=meta.get("face_found") == "True",
            meta={k: v for k, v in meta.items() if k not in ("sources", "patches", "face_found")},
        )
        codes.meta["cache"] = str(path)
        return codes


def stack_code_tables(codes: Sequence[StyleCodes]) -> torch.Tensor:
    """[B, N_REGIONS + 1, D] code tables from a list of StyleCodes."""
    return torch.stack([c.table for c in codes])
