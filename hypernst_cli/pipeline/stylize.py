"""The inference pipeline every command runs:

    photo -> align -> parse -> invert (e4e) -> style codes -> hyper-network -> generator
          -> (the model's detail setting) restore the content's fine detail -> (optional) paste-back

Models load once per process (``HyperNSTPipeline.load``); each content photo is aligned, parsed,
inverted and given its own region codes once (``prepare``), each style image's codes are computed
once (the provider's cache), and the generator runs on batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hypernst_cli.errors import HypernstError, UsageError
from hypernst_cli.io.tensors import to_tensor, to_uint8
from hypernst_cli.pipeline.core import (
    Latent,
    LatentLike,
    StylizeResult,
    as_latent,
    edit_latent,
    edit_wplus,
    encode,
    render,
    restore_detail,
    stylize_tensors,
    warp,
)
from hypernst_cli.pipeline.palette import Palette, apply_palettes, configured
from hypernst_cli.pipeline.style_codes import StyleCodes, blend, mix_regions


@dataclass
class ContentFace:
    """One aligned face of a content photo, ready for the generator."""

    source: Path
    index: int  # 0 = the largest face of the photo
    aligned: Any  # hypernst_cli.faces.types.AlignedFace; None for a face given already aligned
    image: torch.Tensor  # [3, R, R] in [-1, 1]
    mask: torch.Tensor  # [R, R] long region labels
    wplus: torch.Tensor  # [n_latent, style_dim]
    own_codes: StyleCodes  # the content's own region codes (reconstruction)
    photo: np.ndarray | None = None  # the original photo (for paste-back)
    timings: dict[str, float] = field(default_factory=dict)
    # G(w+) without offsets [3, R, R], memoised by generate(): it depends on the content only
    initial: torch.Tensor | None = None
    # the latent was given (not inverted from this image): its render need not match the image
    latent_given: bool = False
    # the spatial feature map F [C_f + 3, r_f, r_f] of a model with the spatial path, else None
    features: torch.Tensor | None = None
    # dlib's 68 points on G(w) alone, memoised by edit_flow (every edited frame moves from them)
    plain_landmarks: np.ndarray | None = None

    @property
    def latent(self) -> Latent:
        """This face's Latent, batched ([1, ...])."""
        return Latent(self.wplus[None], None if self.features is None else self.features[None])


def stack_latents(faces: Sequence[ContentFace]) -> Latent:
    """The faces' latents as one batch (F only when every face has one)."""
    features = [f.features for f in faces]
    return Latent(torch.stack([f.wplus for f in faces]),
                  torch.stack(features) if all(x is not None for x in features) else None)


def resize_uint8(image: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or image.shape[0] == size:
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))


PRECISIONS = ("fp32", "bf16", "fp16")


def precision_from_env(value: str | None = None) -> str:
    """``value``, else $HYPERNST_PRECISION, else fp32; validated (the error names where the bad
    value came from: a typo in the environment is not in the command line the user looks at)."""
    env = os.environ.get("HYPERNST_PRECISION", "")
    from_env = not value and bool(env.strip())
    p = (value or env or "fp32").strip().lower() or "fp32"
    if p not in PRECISIONS:
        where = " in HYPERNST_PRECISION" if from_env else ""
        raise UsageError(f"unknown precision '{p}'{where}",
                         hint=f"use one of: {', '.join(PRECISIONS)}"
                              + (", or unset HYPERNST_PRECISION" if from_env else ""))
    return p


#: the values $HYPERNST_COMPILE may take (anything else is refused, not read as off)
COMPILE_ON = ("1", "true", "yes", "on")
COMPILE_OFF = ("0", "false", "no", "off", "")


def compile_from_env(value: bool | None = None) -> bool:
    """``value``, else $HYPERNST_COMPILE (1/true/yes/on or 0/false/no/off/empty), else False."""
    if value is not None:
        return value
    raw = os.environ.get("HYPERNST_COMPILE", "")
    v = raw.strip().lower()
    if v in COMPILE_ON:
        return True
    if v in COMPILE_OFF:
        return False
    raise UsageError(f"HYPERNST_COMPILE='{raw}' is not a yes or no",
                     hint="set it to 1, true, yes or on; 0, false, no, off or empty; or unset it")


class HyperNSTPipeline:
    """Loaded models + face processor + style-code provider, with the operations commands need.

    Speed settings: ``precision`` (fp32, or bf16/fp16 autocast of the generator and
    hyper-network; the e4e latents stay fp32) and ``compile`` (torch.compile the generator and
    hyper-network on first use; CUDA only: on a CPU the compile time outweighs the gain for a
    command-line run). Both default to $HYPERNST_PRECISION / $HYPERNST_COMPILE.

    ``detail``: the strength of the content's fine detail restored on ``generate``'s outputs
    (``restore_detail``); None = the model config's ``detail.strength`` (0 in the paper's
    configs). Renders of edited latents (``render``, ``generate(latent=...)``) never get it.

    ``palette``: how far stylized outputs' colours move to the style image's Lab distribution
    (histogram matching, ``pipeline/palette.py``; x the style strength); None = the model config's
    ``palette.amount`` (0 in the paper's configs).

    ``iterations``: the hyper-network's refinement passes; None = the model config's
    ``hypernet.iterations`` (what a trained model records: the passes it was trained with).
    """

    def __init__(self, models: Any, faces: Any, provider: Any, *, iterations: int | None = None,
                 precision: str | None = None, compile: bool | None = None,
                 detail: float | None = None, palette: float | None = None) -> None:
        self.models = models
        self.faces = faces
        self.provider = provider
        self.iterations = int(models.config.hypernet.iterations if iterations is None else iterations)
        if self.iterations < 1:
            raise UsageError(f"refinement iterations must be at least 1, got {self.iterations}",
                             hint="--iterations N, or hypernet.iterations in the model's config.json")
        if detail is not None and detail < 0:
            raise UsageError(f"--detail must be 0 or more, got {detail:g}",
                             hint="0 = the generator's output as is; 1 = the content's full detail")
        self.detail = float(models.config.detail.strength if detail is None else detail)
        self.detail_sigma = float(models.config.detail.sigma)
        if palette is not None and not 0.0 <= palette <= 1.0:
            raise UsageError(f"--palette must be between 0 and 1, got {palette:g}",
                             hint="0 = the model's colours as they are; 1 = the style's mean "
                                  "and spread")
        self.palette = float(models.config.palette.amount if palette is None else palette)
        #: the model's palette settings with --palette's amount
        self.palette_settings = dataclasses.replace(models.config.palette, amount=self.palette)
        self.device = models.device
        self.resolution = models.config.resolution
        self.precision = precision_from_env(precision)
        self.compile = compile_from_env(compile)
        self._contents: dict[tuple[str, bool], list[ContentFace] | HypernstError] = {}
        self._compiled: dict[str, Any] = {}
        if self.device.type == "cuda":
            # plain convnets run faster in NHWC on tensor cores (the modulated convs build their
            # own per-sample kernels and are unaffected)
            import torch

            for name in ("encoder", "hypernet"):
                net = models.networks.get(name)
                if net is not None:
                    net.to(memory_format=torch.channels_last)

    # --- speed settings ------------------------------------------------------------------------

    @property
    def _cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16/fp16 autocast when asked for; a no-op for fp32."""
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _maybe_compiled(self, name: str) -> Any:
        net = self.models.networks[name]
        if not (self.compile and self._cuda):
            return net
        if name not in self._compiled:
            import torch

            # dynamic=False: a batch size seen for the first time compiles once more, and every
            # later batch of that size reuses it. The default mode: max-autotune spends minutes
            # tuning, and CUDA graphs ("reduce-overhead") would overwrite the output of one
            # refinement iteration with the next while refine still holds it.
            self._compiled[name] = torch.compile(net, dynamic=False)
        return self._compiled[name]

    def generator_for_inference(self) -> Any:
        return self._maybe_compiled("generator")

    def hypernet_for_inference(self) -> Any:
        return self._maybe_compiled("hypernet")

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        import torch

        with torch.inference_mode(), self.autocast():
            yield

    @classmethod
    def load(
        cls,
        *,
        weights: str | None,
        config: str,
        device: str,
        backend: str = "auto",
        seed: int | None = None,
        cache: bool = True,
        iterations: int | None = None,
        precision: str | None = None,
        compile: bool | None = None,
        detail: float | None = None,
        palette: float | None = None,
    ) -> HyperNSTPipeline:
        from hypernst_cli.device import resolve_device
        from hypernst_cli.info import cache_dir
        from hypernst_cli.pipeline.code_cache import style_code_provider
        from hypernst_cli.pipeline.models import INFERENCE_PARTS, load_models
        from hypernst_cli.pipeline.session import face_processor

        # the speed settings first: a bad $HYPERNST_PRECISION / $HYPERNST_COMPILE fails before
        # the models load
        precision, compile = precision_from_env(precision), compile_from_env(compile)
        dev = resolve_device(device)
        models = load_models(weights, config, dev, INFERENCE_PARTS)
        faces = face_processor(backend, dev)
        provider = style_code_provider(models.aladin, models.config, faces,
                                       cache_dir=cache_dir() if cache else None, device=dev,
                                       seed=seed, aladin_id=models.model_id("aladin"))
        return cls(models, faces, provider, iterations=iterations, precision=precision,
                   compile=compile, detail=detail, palette=palette)

    # --- contents ------------------------------------------------------------------------------

    def prepare(self, path: Path, *, all_faces: bool = False,
                latent: LatentLike | None = None) -> list[ContentFace]:
        """Align, parse, invert and encode the faces of a content photo (memoised per run)."""
        key = (str(Path(path).resolve()), all_faces)
        cached = self._contents.get(key)
        if isinstance(cached, HypernstError):
            raise cached
        if cached is not None and latent is None:
            return cached
        try:
            faces = self._prepare(Path(path), all_faces, latent)
        except HypernstError as exc:
            self._contents[key] = exc
            raise
        if latent is None:
            self._contents[key] = faces
        return faces

    def _prepare(self, path: Path, all_faces: bool, latent: LatentLike | None) -> list[ContentFace]:
        from hypernst_cli.io import load_image

        return self.prepare_image(load_image(path), path, all_faces=all_faces, latent=latent)

    def prepare_image(self, photo: np.ndarray, source: Path | str = "<image>", *,
                      all_faces: bool = False,
                      latent: LatentLike | None = None) -> list[ContentFace]:
        """Align, parse, invert and encode the faces of an in-memory photo (not memoised).

        ``latent`` (from `hypernst invert`) replaces the inversion: W+, and F for a model with the
        spatial path (a W+-only latent gets F = G_f(W+), which renders the same image)."""
        import time

        t0 = time.perf_counter()
        path = Path(source)
        aligned_faces = (self.faces.align_all(photo, self.resolution, source=path) if all_faces
                         else [self.faces.align_largest(photo, self.resolution, source=path)])
        t_align = time.perf_counter() - t0
        out = []
        for aligned in aligned_faces:
            t1 = time.perf_counter()
            mask = self.faces.parse(aligned)
            t_parse = time.perf_counter() - t1
            image = to_tensor(aligned.image)[0]
            t2 = time.perf_counter()
            if latent is not None:
                wplus, features = self._given_latent(as_latent(latent))
            else:
                wplus, features = self._encode(image)
            t_invert = time.perf_counter() - t2
            t3 = time.perf_counter()
            own = self.provider.for_image(aligned.image, mask=mask)
            out.append(ContentFace(
                source=path, index=aligned.index, aligned=aligned, image=image,
                mask=torch.from_numpy(mask.astype(np.int64)), wplus=wplus, own_codes=own,
                photo=photo, latent_given=latent is not None, features=features,
                timings={"align": t_align, "parse": t_parse, "invert": t_invert,
                         "content_codes": time.perf_counter() - t3},
            ))
        return out

    def prepare_aligned(self, image: np.ndarray, mask: np.ndarray,
                        source: Path | str = "<image>") -> ContentFace:
        """A face that is already aligned at the model's resolution, with its known region mask:
        inverted and given its own codes, neither realigned nor re-parsed (not memoised)."""
        import time

        if image.shape[:2] != (self.resolution, self.resolution) or mask.shape != image.shape[:2]:
            raise UsageError(
                f"{source}: an aligned face of {image.shape[1]}x{image.shape[0]} px with a "
                f"{mask.shape[1]}x{mask.shape[0]} mask; this model needs {self.resolution} px",
                hint="resize the aligned face and its mask to the model's resolution")
        unit = to_tensor(image)[0]
        t0 = time.perf_counter()
        wplus, features = self._encode(unit)
        t1 = time.perf_counter()
        own = self.provider.for_image(image, mask=mask)
        return ContentFace(
            source=Path(source), index=0, aligned=None, image=unit,
            mask=torch.from_numpy(mask.astype(np.int64)), wplus=wplus, own_codes=own,
            timings={"invert": t1 - t0, "content_codes": time.perf_counter() - t1},
            features=features,
        )

    def _encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """An aligned face [3, R, R] in [-1, 1] -> (W+ [L, D], F or None), on the CPU. In fp32
        even under reduced precision: the latents feed every later render."""
        with torch.inference_mode():
            found = encode(self.models.encoder, self.models.generator, image[None].to(self.device))
        return found.wplus[0].cpu(), None if found.features is None else found.features[0].cpu()

    def _given_latent(self, latent: Latent) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A latent file's (W+ [L, D], F [C, r, r] or None), checked against this model."""
        wplus = latent.wplus.to(torch.float32)
        wplus = wplus[0] if wplus.dim() == 3 else wplus
        generator = self.models.generator
        hint = "invert the photo with the same model (`hypernst invert`)"
        expected = (generator.n_latent, self.models.config.generator.style_dim)
        if tuple(wplus.shape) != expected:
            raise UsageError(f"the latent has shape {tuple(wplus.shape)}, this model needs "
                             f"{expected}", hint=hint)
        if not generator.spatial:
            if latent.features is not None:
                raise UsageError("the latent has spatial features (F) but this model has no "
                                 "spatial path", hint=hint)
            return wplus, None
        if latent.features is None:  # a W+-only latent: the generator's own features
            with torch.inference_mode():
                features = generator.spatial_features(wplus[None].to(self.device))[0].cpu()
            return wplus, features
        features = latent.features.to(torch.float32)
        features = features[0] if features.dim() == 4 else features
        if tuple(features.shape) != generator.feature_shape():
            raise UsageError(f"the latent's features have shape {tuple(features.shape)}, this "
                             f"model needs {generator.feature_shape()}", hint=hint)
        return wplus, features

    @property
    def palette_inks(self) -> float:
        """How far the palette pulls to the style's inks (``palette.inks``), x the strength."""
        return float(self.palette_settings.inks)

    # --- style codes ---------------------------------------------------------------------------

    def style_codes(self, style: Path) -> StyleCodes:
        return self.provider.for_file(style)

    def code_table(
        self,
        content: ContentFace,
        style: Path | None,
        *,
        strength: float = 1.0,
        regions: Mapping[str, Path] | None = None,
    ) -> torch.Tensor:
        """The [4, D] code table that conditions one output: the style's region codes (optionally
        taken region by region from several images) and global code, blended with the content's
        own by ``strength``."""
        own = content.own_codes
        if style is None and not regions:
            return own.table
        default = self.style_codes(style) if style is not None else own
        target = mix_regions({k: self.style_codes(v) for k, v in (regions or {}).items()}, default)
        return blend(own.table, target, strength)

    def palette_for(self, style: Path | np.ndarray | StyleCodes | None, *,
                    strength: float = 1.0,
                    regions: Mapping[str, Path] | None = None) -> Palette | None:
        """The palette an output with ``style`` (a file, an RGB array or its codes) at
        ``strength`` is moved to; None when there is none to apply (no style, strength 0 or the
        palette off). ``regions`` (``--region``): those regions take their palette from their
        own style image, as they take their codes."""
        from hypernst_cli.faces.regions import REGION_IDS

        amount = self.palette * strength
        if style is None or amount <= 0:
            return None
        codes = self._palette_codes(style)
        palette = configured(self.palette_settings, codes.palette.clone(),
                             None if codes.inks is None else codes.inks.clone(), strength)
        for name, image in (regions or {}).items():
            # a region given its own style image takes that image's region palette in full
            own, r = self._palette_codes(image), REGION_IDS[name]
            palette.stats[r] = own.palette[r]
            if palette.inks is not None and own.inks is not None:
                palette.inks[r] = own.inks[r]
            palette.regions[r] = palette.ink_regions[r] = 1.0
        return palette

    def _palette_codes(self, style: Path | np.ndarray | StyleCodes) -> StyleCodes:
        if isinstance(style, StyleCodes):
            codes = style
        elif isinstance(style, np.ndarray):
            codes = self.array_codes(style)
        else:
            codes = self.style_codes(Path(style))
        if codes.palette is None:
            raise ValueError("these style codes carry no palette (a content's own codes?)")
        return codes

    def array_codes(self, image: np.ndarray) -> StyleCodes:
        """The codes (and palette) of a style image given as an RGB array, kept by its content
        hash for the run (evaluation feeds the same styles many times)."""
        import hashlib

        sha = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        return self.provider.for_image(image, sha=f"array-{sha}")

    # --- generation ----------------------------------------------------------------------------

    def generate(
        self,
        contents: Sequence[ContentFace],
        codes: Sequence[torch.Tensor] | torch.Tensor,
        *,
        latent: LatentLike | None = None,
        offsets_from: torch.Tensor | None = None,
        palettes: Sequence[Palette | None] | None = None,
    ) -> StylizeResult:
        """One batched forward: contents [B] with code tables [B, 4, D] (or one [4, D] for all).

        ``latent``: render these (e.g. edited) latents instead of the contents' own.
        ``palettes``: one per content (:meth:`palette_for`; None: no palette), applied last and
        kept in ``result.palettes`` (edits of the result reuse them).

        The content's detail is restored (``self.detail``) on the outputs of latents inverted from
        their own image; ``result.iterations[-1]`` keeps the generator's output as is."""
        dev = self.device
        images = torch.stack([c.image for c in contents]).to(dev)
        masks = torch.stack([c.mask for c in contents]).to(dev)
        if isinstance(codes, torch.Tensor) and codes.dim() == 2:
            codes = codes[None].expand(len(contents), -1, -1)
        tables = torch.stack(list(codes)).to(dev) if not isinstance(codes, torch.Tensor) \
            else codes.to(dev)
        given = latent is not None
        used = as_latent(latent) if given else stack_latents(contents)
        # edited latents render their own starting image; the contents' own one is memoised
        initial = None if given else self._initial_images(contents)
        with self._inference():
            result = stylize_tensors(self.generator_for_inference(), self.hypernet_for_inference(),
                                     self.models.encoder, images, masks, tables,
                                     iterations=self.iterations, latent=used.to(dev),
                                     initial=initial)
        if result.images.dtype != torch.float32:  # reduced precision: callers get fp32 images
            result.images = result.images.float()
            result.iterations = [im.float() for im in result.iterations]
            result.initial = result.initial.float()
        own = [not given and not c.latent_given for c in contents]
        if self.detail > 0 and any(own):
            detailed = restore_detail(result.images, images, self.detail, self.detail_sigma)
            keep = torch.tensor(own, device=dev).view(-1, 1, 1, 1)
            result.images = torch.where(keep, detailed, result.images)
        if palettes is not None:
            result.palettes = list(palettes)
            result.images = apply_palettes(result.images, result.palettes, masks)
        return result

    def _initial_images(self, contents: Sequence[ContentFace]) -> torch.Tensor:
        """G(w+) of each content [B, 3, R, R] on the device: rendered once per distinct face (a
        face repeated in a batch, or seen in an earlier batch, reuses it)."""
        missing = list({id(c): c for c in contents if c.initial is None}.values())
        if missing:
            with self._inference():
                rendered = render(self.generator_for_inference(),
                                  stack_latents(missing).to(self.device))
            for face, image in zip(missing, rendered):
                face.initial = image.cpu()  # kept with the face's other tensors (host memory)
        return torch.stack([c.initial.to(self.device) for c in contents])

    def settings(self) -> dict[str, Any]:
        """How this pipeline renders, for reports: the model and its inference settings."""
        info = self.models
        return {"model": f"{info.config.name} from {info.origin} {info.source}",
                "detail": self.detail, "palette": self.palette,
                "inks": self.palette_inks if self.palette else 0.0,
                "iterations": self.iterations,
                "faces_backend": self.faces.backend}

    def as_method(self, strength: float = 1.0) -> Any:
        """A (content, style) -> output callable over arrays, for evaluation: content is an
        aligned face, style any image (its codes cached by content hash)."""
        def method(content: np.ndarray, style: np.ndarray) -> np.ndarray:
            face = self.prepare_image(content)[0]
            target = self.array_codes(style)
            codes = blend(face.own_codes.table, target.table, strength)
            palette = self.palette_for(target, strength=strength)
            return to_uint8(self.generate([face], codes, palettes=[palette]).images)[0]

        return method

    def align_crop(self, image: np.ndarray) -> np.ndarray:
        """The aligned face crop at the model's resolution (what outputs are compared with)."""
        return self.faces.align_largest(image, self.resolution).image

    def render(self, latent: LatentLike, offsets: list[torch.Tensor | None] | None,
               skip: torch.Tensor | None = None) -> torch.Tensor:
        """G(theta + offsets)(latent) for given latents and (already predicted) offsets, and the
        content skip's residual where the model has one (``StylizeResult.skip``)."""
        with self._inference():
            return render(self.generator_for_inference(), as_latent(latent).to(self.device),
                          offsets, skip=skip).float()

    def render_edit(self, face: ContentFace, direction: torch.Tensor, strength: float,
                    base: StylizeResult | None, *, follow: bool = True) -> torch.Tensor:
        """The face edited along ``direction`` (``core.edit_latent``), rendered with ``base``'s
        offsets and content skip: those of the unedited face, as HyperStyle applies its offsets
        to edits, so strength 0 renders ``base`` itself (``base`` None: the plain generator).
        [1, 3, R, R] on the device.

        ``follow`` (models with F): F's detail and the content skip move with the edit's motion
        (:meth:`edit_flow`); without it they stay where the unedited face had them, which
        holds the geometry in place (a pose edit then hardly turns the head)."""
        flow = self.edit_flow(face, direction, strength) if follow else None
        with torch.inference_mode():
            edited = edit_latent(self.models.generator, face.latent.to(self.device), direction,
                                 strength, flow)
            skip = None if base is None else base.skip
            if skip is not None and flow is not None:
                skip = warp(skip, flow)
        image = self.render(edited, None if base is None else base.offsets, skip)
        if base is not None and base.palettes is not None:
            image = apply_palettes(image, base.palettes, face.mask[None].to(image.device))
        return image

    def edit_flow(self, face: ContentFace, direction: torch.Tensor,
                  strength: float) -> torch.Tensor | None:
        """How the edit moves the face: the backward map [1, 2, R, R] in pixels
        (``faces.warp.landmark_flow``) from dlib's 68 landmarks on the plain renders G(w) and
        G(w_edit), W+ alone (aligned faces, so the predictor sits on the FFHQ face box). None
        where nothing is to move: a face without F, or strength 0."""
        if face.features is None or strength == 0:
            return None
        from hypernst_cli.eval.landmarks import find_landmarks
        from hypernst_cli.faces.warp import landmark_flow

        def landmarks_of(wplus: torch.Tensor) -> np.ndarray:
            with self._inference():
                plain = render(self.generator_for_inference(), wplus.to(self.device))
            return find_landmarks(to_uint8(plain)[0], box="aligned")

        if face.plain_landmarks is None:  # the unedited face's: the same for every frame
            face.plain_landmarks = landmarks_of(face.wplus[None])
        before = face.plain_landmarks
        after = landmarks_of(edit_wplus(face.wplus[None], direction, strength))
        flow = landmark_flow(before, after, self.resolution)
        return torch.from_numpy(flow).permute(2, 0, 1)[None].to(self.device)


def parse_strength_range(spec: str) -> tuple[float, float]:
    """``A..B`` (or a single number) -> (A, B)."""
    import math

    text = spec.strip()
    try:
        a, b = (float(v) for v in text.split("..", 1)) if ".." in text else (float(text),) * 2
    except ValueError:
        raise UsageError(f"invalid strength range '{spec}'", hint="use A..B, e.g. -2..2") from None
    if not (math.isfinite(a) and math.isfinite(b)):  # nan renders black frames, inf garbage
        raise UsageError(f"invalid strength range '{spec}': strengths must be finite numbers",
                         hint="use A..B, e.g. -2..2")
    if max(abs(a), abs(b)) > MAX_EDIT_STRENGTH:
        raise UsageError(f"strength range '{spec}' is past +-{MAX_EDIT_STRENGTH:g}: the latent leaves "
                         "the generator's range there and the frames are noise",
                         hint="use A..B within it, e.g. -2..2 (the range the directions are checked on)")
    return a, b


#: edit strengths past this move W+ far outside anything the generator was trained on
MAX_EDIT_STRENGTH = 20.0


def linspace(a: float, b: float, steps: int) -> list[float]:
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    if steps == 1:
        return [b]
    return [a + (b - a) * i / (steps - 1) for i in range(steps)]
