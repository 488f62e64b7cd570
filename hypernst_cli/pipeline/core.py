"""The tensor core of HyperNST, shared by inference and training.

    y(c, s) = G(theta + H(E_mask(arrange(codes(s), SM_c)) ^ E_c(c, y_prev)))(e4e(c))   (paper Eq. 2)

Images are float tensors in [-1, 1], [B, 3, R, R] at the generator's resolution R; masks are
integer region labels [B, R, R]; region codes are [B, 3, D] (background, face, hair).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from hypernst_cli.models.filters import gaussian_blur, luminance
from hypernst_cli.models.hypernet import refine
from hypernst_cli.pipeline.style_codes import arrange


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)


def invert(encoder: Any, content: torch.Tensor) -> torch.Tensor:
    """e4e: aligned content [-1, 1] -> W+ latents [B, n_latent, style_dim]."""
    return encoder(resize(content, encoder_input_size(encoder)))


def encoder_input_size(encoder: Any) -> int:
    return int(getattr(encoder, "input_size", None) or encoder.cfg.input_size)


@dataclass
class StylizeResult:
    images: torch.Tensor  # final output [B, 3, R, R] in [-1, 1]
    wplus: torch.Tensor
    offsets: list[torch.Tensor | None]
    iterations: list[torch.Tensor]  # the output after each refinement iteration
    initial: torch.Tensor  # G(w+) with no offsets: the plain e4e reconstruction


def stylize_tensors(
    generator: Any,
    hypernet: Any,
    encoder: Any,
    content: torch.Tensor,
    content_mask: torch.Tensor,
    region_codes: torch.Tensor,
    *,
    iterations: int = 3,
    wplus: torch.Tensor | None = None,
    initial: torch.Tensor | None = None,
) -> StylizeResult:
    """Stylize aligned content with per-sample region codes (the content's own codes reconstruct).

    ``initial``: G(w+) without offsets when already known (it depends on the content only, so a
    content stylized with several styles renders it once).
    """
    if wplus is None:
        wplus = invert(encoder, content)
    code_map = arrange(region_codes.to(content.dtype), content_mask)
    result = refine(generator, hypernet, wplus, content, code_map, iterations=iterations,
                    initial=initial)
    return StylizeResult(
        images=result.images[-1] if result.images else result.initial,
        wplus=wplus,
        offsets=result.offsets,
        iterations=list(result.images),
        initial=result.initial,
    )


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
