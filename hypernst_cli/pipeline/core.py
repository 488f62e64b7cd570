"""The tensor core of HyperNST, shared by inference and training.

    y(c, s) = G(theta + H(E_mask(arrange(codes(s), SM_c)) ^ E_c(c, y_prev), A(s)))(e4e(c))   (Eq. 2)

Images are float tensors in [-1, 1], [B, 3, R, R] at the generator's resolution R; masks are
integer region labels [B, R, R]; code tables are [B, 4, D]: the region codes (background, face,
hair) and the global code A(s) (pipeline/style_codes.py, ``StyleCodes.table``).

What the generator renders is a :class:`Latent`: W+ and, with the spatial path
(``generator.feature_resolution``), the feature map F. :func:`encode` makes one, :func:`render`
draws one (inference and training alike), :func:`edit_latent` edits one (and
:func:`warp` moves its detail with the edit's motion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import torch
import torch.nn.functional as F

from hypernst_cli.models.filters import gaussian_blur, luminance
from hypernst_cli.models.hypernet import refine
from hypernst_cli.pipeline.style_codes import GLOBAL_ROW, arrange


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)


def invert(encoder: Any, content: torch.Tensor) -> torch.Tensor:
    """e4e: aligned content [-1, 1] -> W+ latents [B, n_latent, style_dim]."""
    return encoder(resize(content, encoder_input_size(encoder)))


@dataclass(frozen=True)
class Latent:
    """What the generator renders: W+ [B, n_latent, style_dim] and, with the spatial path, the
    feature map F [B, C_f + 3, r_f, r_f] (None: W+ only, the same image as F = G_f(W+))."""

    wplus: torch.Tensor
    features: torch.Tensor | None = None

    def to(self, *args: Any, **kwargs: Any) -> Latent:
        return Latent(self.wplus.to(*args, **kwargs),
                      None if self.features is None else self.features.to(*args, **kwargs))


LatentLike = Union[Latent, torch.Tensor]  # a bare tensor is W+ only


def as_latent(latent: LatentLike) -> Latent:
    return latent if isinstance(latent, Latent) else Latent(latent)


def encode(encoder: Any, generator: Any, content: torch.Tensor) -> Latent:
    """Aligned content [-1, 1] -> its Latent: e4e's W+, and with the encoder's spatial head
    F = G_f(W+) + the head's residual (the generator's own features at r_f, corrected)."""
    x = resize(content, encoder_input_size(encoder))
    if getattr(encoder, "feature_head", None) is None:
        return Latent(encoder(x))
    wplus, residual = encoder(x, with_features=True)
    return Latent(wplus, generator.spatial_features(wplus) + residual)


def render(generator: Any, latent: LatentLike, offsets: list[torch.Tensor | None] | None = None,
           **options: Any) -> torch.Tensor:
    """G(theta + offsets)(latent): the generator call of inference and training ([B, 3, R, R])."""
    latent = as_latent(latent)
    return generator(latent.wplus, features=latent.features, offsets=offsets, **options)


def edit_latent(generator: Any, latent: LatentLike, direction: torch.Tensor,
                strength: float, flow: torch.Tensor | None = None) -> Latent:
    """An InterFaceGAN edit: W+ moves along ``direction`` (:func:`edit_wplus`) and F by the
    generator's own feature difference, F + G_f(w_edit) - G_f(w) (Feature-Style encoder).

    ``flow`` (:func:`warp`'s backward map of the edit's motion, [B, 2, R, R]): F's residual over
    the generator's own features moves with the face instead of staying in place,
    G_f(w_edit) + warp(F - G_f(w)); without it a pose edit cannot turn the detail F holds."""
    latent = as_latent(latent)
    edited = edit_wplus(latent.wplus, direction, strength)
    if latent.features is None:
        return Latent(edited)
    own, moved = generator.spatial_features(latent.wplus), generator.spatial_features(edited)
    if flow is None:
        return Latent(edited, latent.features + moved - own)
    return Latent(edited, moved + warp(latent.features - own, flow))


def warp(maps: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Resample maps [B, C, h, w] by a backward map ``flow`` [B, 2, R, R] given in pixels of an
    R x R picture (x offset first; ``faces.warp.landmark_flow``): output pixel p is the input at
    p + flow(p), the map scaled to the maps' own size (so F at r_f and the content skip at R
    move alike). Outside the picture the border repeats."""
    b, _, h, w = maps.shape
    size = flow.shape[-1]
    if (h, w) != tuple(flow.shape[-2:]):
        flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
    flow = flow.to(maps.dtype) * torch.tensor([w / size, h / size], dtype=maps.dtype,
                                              device=maps.device).view(1, 2, 1, 1)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=maps.dtype, device=maps.device),
                            torch.arange(w, dtype=maps.dtype, device=maps.device), indexing="ij")
    # grid_sample's coordinates: -1 and 1 are the outer edges of the corner pixels
    x = (xs + flow[:, 0] + 0.5) * (2.0 / w) - 1.0
    y = (ys + flow[:, 1] + 0.5) * (2.0 / h) - 1.0
    grid = torch.stack([x, y], dim=-1).expand(b, h, w, 2)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)


def encoder_input_size(encoder: Any) -> int:
    return int(getattr(encoder, "input_size", None) or encoder.cfg.input_size)


@dataclass
class StylizeResult:
    images: torch.Tensor  # final output [B, 3, R, R] in [-1, 1]
    wplus: torch.Tensor
    offsets: list[torch.Tensor | None]
    iterations: list[torch.Tensor]  # the output after each refinement iteration
    initial: torch.Tensor  # G(w+) with no offsets: the plain e4e reconstruction
    features: torch.Tensor | None = None  # the spatial feature map F (spatial path), else None
    skip: torch.Tensor | None = None  # the content skip's residual (hypernet.skip_width), else None
    palettes: list[Any] | None = None  # the palette applied per item (pipeline/palette.py), if any


def stylize_tensors(
    generator: Any,
    hypernet: Any,
    encoder: Any,
    content: torch.Tensor,
    content_mask: torch.Tensor,
    codes: torch.Tensor,
    *,
    iterations: int = 3,
    latent: LatentLike | None = None,
    initial: torch.Tensor | None = None,
) -> StylizeResult:
    """Stylize aligned content with per-sample code tables [B, 4, D] (the content's own codes
    reconstruct).

    ``latent``: the content's Latent (or bare W+) when already known, else encoded here.
    ``initial``: G(w+) without offsets when already known (it depends on the content only, so a
    content stylized with several styles renders it once).
    """
    latent = encode(encoder, generator, content) if latent is None else as_latent(latent)
    code_map, global_code = condition(codes.to(content.dtype), content_mask)
    result = refine(generator, hypernet, latent.wplus, content, code_map, iterations=iterations,
                    initial=initial, features=latent.features, global_code=global_code)
    return StylizeResult(
        images=result.images[-1] if result.images else result.initial,
        wplus=latent.wplus,
        offsets=result.offsets,
        iterations=list(result.images),
        initial=result.initial,
        features=latent.features,
        skip=result.skip,
    )


def condition(codes: torch.Tensor, content_mask: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Code tables [B, 4, D] and content masks -> (the code map M(s) on the content's mask for
    E_mask, the global codes A(s) [B, D]); region codes alone ([B, 3, D]) give no A(s)."""
    code_map = arrange(codes, content_mask)
    return code_map, codes[:, GLOBAL_ROW] if codes.shape[1] > GLOBAL_ROW else None


def restore_detail(output: torch.Tensor, content: torch.Tensor, strength: float,
                   sigma: float) -> torch.Tensor:
    """``output`` plus ``strength`` x the content's luminance detail finer than ``sigma`` px (the
    content's luma minus its Gaussian blur), added equally to R, G and B so the output's colours
    stay its own. Both [B, 3, R, R] in [-1, 1]; a strength of 0 returns ``output`` unchanged."""
    if strength == 0:
        return output
    luma = luminance(content.float())
    detail = luma - gaussian_blur(luma, sigma)
    return (output.float() + strength * detail).clamp(-1, 1).to(output.dtype)


def edit_wplus(wplus: torch.Tensor, direction: torch.Tensor, strength: float) -> torch.Tensor:
    """InterFaceGAN edit in W+: w + strength * n (n: [D], [1, D] or per-layer [L, D])."""
    d = direction.to(wplus)
    if d.dim() == 1:
        d = d[None, None]
    elif d.dim() == 2:
        d = d[None] if d.shape[0] == wplus.shape[1] else d[:, None]
    if d.shape[1] not in (1, wplus.shape[1]):
        # per-layer directions saved for another generator depth: use the layers both have
        d = d[:, : wplus.shape[1]]
    if d.shape[-1] != wplus.shape[-1]:
        from hypernst_cli.errors import UsageError

        raise UsageError(
            f"the direction has {d.shape[-1]} dimensions but this generator's latents have "
            f"{wplus.shape[-1]}",
            hint="use a direction made for this model",
        )
    return wplus + strength * d
