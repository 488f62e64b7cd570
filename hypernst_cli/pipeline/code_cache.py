"""The style-code provider: Eq. 1's codes of style images, computed once and cached, with each
image's palette per region (the palette post-process's input: it needs the same region mask).

The maths is pipeline/style_codes.py; this module is the bookkeeping around it: reading the image,
hashing its bytes, an in-memory cache for the run and a safetensors cache on disk across runs
(keyed by everything the codes depend on), and :func:`style_code_provider`, the one way to build
a provider for a model's ALADIN, used by inference (pipeline/stylize.py, ``hypernst codes``) and
training (train/hyper.py, ``hypernst prepare``) alike, so both compute and find the same codes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from hypernst_cli.configs import ModelConfig, StyleCodeConfig
from hypernst_cli.errors import NoFaceError
from hypernst_cli.models.patches import SAMPLER_VERSION
from hypernst_cli.pipeline.palette import QUANTILES
from hypernst_cli.pipeline.style_codes import Encoder, PatchBox, StyleCodes, compute_style_codes

#: A parser maps an RGB uint8 image to a uint8 region mask (H, W), or raises NoFaceError.
Parser = Callable[[np.ndarray], np.ndarray]


class RegionMasks(Protocol):
    """Where a provider's region masks come from: a face processor at inference
    (faces.FaceProcessor), a prepared folder's masks in training (train.common.PreparedMasks)."""

    #: its name in the cache key: other masks give other codes
    parser_id: str

    def parse_image(self, image: np.ndarray) -> np.ndarray:
        """Region labels of an RGB uint8 image, or NoFaceError (then: global codes everywhere)."""
        ...


def style_code_provider(
    aladin: Any,
    model_cfg: ModelConfig,
    masks: RegionMasks | None,
    *,
    cache_dir: Path | None,
    device: torch.device | str,
    seed: int | None = None,
    aladin_id: str | None = None,
) -> StyleCodeProvider:
    """The one way to build a provider over a model's ALADIN, with the model config's Eq. 1
    settings (inference, ``hypernst codes``, ``hypernst prepare`` and the training stages).

    ``masks``: the region parser (None: no parser, every region falls back to the global code);
    ``cache_dir``: codes are kept under CACHE_DIR/codes (None: in memory only); ``seed``: another
    patch-sampling seed than the config's; ``aladin_id``: the content hash of ALADIN's weights
    when already known (``LoadedModels.model_id``), else it is hashed here: codes of other
    weights never come from the cache.
    """
    from hypernst_cli.pipeline.models import fingerprint

    cfg = model_cfg.style_codes
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    return StyleCodeProvider(
        aladin.encode,
        None if masks is None else masks.parse_image,
        cfg,
        model_id=f"aladin-{aladin_id or fingerprint(aladin.state_dict())}",
        parser_id="none" if masks is None else masks.parser_id,
        encode_size=model_cfg.aladin.image_size,
        cache_dir=cache_dir,
        device=device,
    )


#: style images are read at most this size for their palette (area-averaged; the statistics of a
#: photo do not need its every pixel)
PALETTE_SIDE = 256


def palette_table(image: np.ndarray, mask: np.ndarray | None) -> torch.Tensor:
    """The palette table [N_REGIONS + 1, QUANTILES, 3] of an RGB uint8 image with its region
    labels (None: no face, the whole image's quantiles for every region)."""
    from hypernst_cli.pipeline.palette import region_quantiles

    return region_quantiles(*_palette_input(image, mask))[0]


def palette_and_inks(image: np.ndarray,
                     mask: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`palette_table` and the ink table [N_REGIONS + 1, INKS, 3] of the same image
    (``pipeline/palette.region_inks``: each region's two main colours, then the whole image's),
    read and converted once."""
    from hypernst_cli.pipeline.palette import palette_tables

    table, inks = palette_tables(*_palette_input(image, mask))
    return table[0], inks[0]


def _palette_input(image: np.ndarray,
                   mask: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The image as a [1, 3, H, W] tensor at most ``PALETTE_SIDE`` a side, with its labels."""
    import torch.nn.functional as F

    from hypernst_cli.io.tensors import to_tensor

    x = to_tensor(image)
    labels = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=np.int64))[None]
    side = max(x.shape[-2:])
    if side > PALETTE_SIDE:
        scale = PALETTE_SIDE / side
        size = (max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale)))
        x = F.interpolate(x, size=size, mode="area")
        if labels is not None:
            labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
    return x, labels


@dataclass(eq=False)
class StyleCodeProvider:
    """Style codes per style image, computed once: in memory for the run, on disk across runs.

    The disk cache key covers everything the codes depend on: the sha256 of the image bytes, the
    encoder's model id, the parser id and the sampling settings (P, patch sizes, threshold, seed,
    the sampler's version).
    A changed image or model therefore never reuses stale codes.
    """

    encoder: Encoder
    parser: Parser | None
    cfg: StyleCodeConfig
    _: KW_ONLY
    model_id: str
    parser_id: str = "none"
    encode_size: int | None = None
    cache_dir: Path | None = None
    device: torch.device | str = "cpu"
    #: how many images went through the encoder (for reports and tests), how many of them were
    #: style images (files or content-addressed arrays, not a face's own codes), and how many
    #: style images' codes were read from the disk cache instead
    computed: int = field(default=0, init=False)
    computed_styles: int = field(default=0, init=False)
    from_disk: int = field(default=0, init=False)
    _memory: dict[str, StyleCodes] = field(default_factory=dict, init=False, repr=False)

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
        from hypernst_cli.io.atomic import protect_input
        from hypernst_cli.io.inputs import file_sha256

        # a style read from the cache is never decoded by load_image, which is what marks a
        # file as an input: mark it here, so no output of the run may replace it
        protect_input(path)
        path = Path(path)
        if not path.is_file():
            from hypernst_cli.errors import InputError

            raise InputError(path, "a folder, not a style image" if path.is_dir()
                             else "no such file", hint="give a style image file")
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
        codes.palette, codes.inks = palette_and_inks(image, mask)
        self.computed += 1
        codes.meta.update(self.settings())
        if sha is not None:
            self.computed_styles += 1
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

        from hypernst_cli.errors import WriteError
        from hypernst_cli.io.atomic import atomic_path

        meta = dict(codes.meta)
        meta["sources"] = ",".join(codes.sources)
        meta["face_found"] = str(codes.face_found)
        meta["patches"] = json.dumps([[[b.top, b.left, b.size] for b in r] for r in codes.patches])
        tensors = {"global": codes.global_code.contiguous(), "regions": codes.region_codes.contiguous()}
        if codes.palette is not None:
            tensors["palette"] = codes.palette.contiguous()
        if codes.inks is not None:
            tensors["inks"] = codes.inks.contiguous()
        try:
            with atomic_path(path) as tmp:
                save_file(tensors, str(tmp), metadata=meta)
        except (OSError, WriteError):
            # a cache that cannot be written (read-only, a file where its folder should be)
            # only costs speed: the run goes on without it
            return
        codes.meta["cache"] = str(path)

    def _load(self, sha: str) -> StyleCodes | None:
        codes = self._read(sha)
        self.from_disk += codes is not None
        return codes

    def _read(self, sha: str) -> StyleCodes | None:
        path = self.cache_path(sha)
        if path is None or not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                glob = fh.get_tensor("global")
                regions = fh.get_tensor("regions")
                # an entry written before palettes (or their inks) were cached is recomputed
                # (it lacks one)
                palette = fh.get_tensor("palette")
                inks = fh.get_tensor("inks")
            if palette.shape[-2] != QUANTILES:
                return None  # an entry of the earlier mean-and-spread palettes
        except Exception:  # noqa: BLE001 - a corrupt (or older) cache entry is recomputed
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
            palette=palette,
            inks=inks,
        )
        codes.meta["cache"] = str(path)
        return codes
