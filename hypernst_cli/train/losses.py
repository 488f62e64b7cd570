"""Losses shared by the training stages: GAN terms, R1, path length, EMA, reconstruction, LPIPS.

GAN losses are the non-saturating logistic ones of StyleGAN2 (and of the paper's Eqs. 4-5):
the generator side minimises -log D(fake) = softplus(-D(fake)); the discriminator minimises
softplus(D(fake)) + softplus(-D(real)).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hypernst_cli.models.filters import luminance
from hypernst_cli.pipeline.palette import rgb_to_lab


def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(D(fake)), averaged."""
    return F.softplus(-fake_logits).mean()


def d_logistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(D(real)) - log(1 - sigmoid(D(fake))), averaged."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """Squared gradient norm of D at the real inputs (Mescheder et al. 2018), per sample mean.

    ``real_inputs`` must have had ``requires_grad_(True)`` before D saw them.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def path_length_penalty(images: torch.Tensor, latents: torch.Tensor, mean_length: float,
                        decay: float = 0.01) -> tuple[torch.Tensor, float]:
    """StyleGAN2's path-length regulariser: the Jacobian norm of G at w, pulled to its running
    mean. Returns (penalty, updated running mean)."""
    noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * noise).sum(), latents, create_graph=True)
    lengths = torch.sqrt(grad.pow(2).sum(2).mean(1))
    new_mean = mean_length + decay * (float(lengths.mean().detach()) - mean_length)
    return (lengths - new_mean).pow(2).mean(), new_mean


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """target <- decay * target + (1 - decay) * source (parameters); buffers copied."""
    src = dict(source.named_parameters())
    for name, p in target.named_parameters():
        p.lerp_(src[name].detach(), 1.0 - decay)
    src_buffers = dict(source.named_buffers())
    for name, b in target.named_buffers():
        b.copy_(src_buffers[name])


def ema_decay(batch_images: int, half_life_kimg: float) -> float:
    """Per-step decay for an EMA whose weight halves every ``half_life_kimg`` thousand images."""
    if half_life_kimg <= 0:
        return 0.0
    return 0.5 ** (batch_images / (half_life_kimg * 1000.0))


class LPIPSLoss(nn.Module):
    """Differentiable LPIPS (v0.1) on images in [-1, 1], with the backbone found locally.

    Built from :class:`hypernst_cli.eval.lpips_metric.LPIPSMetric` (which never downloads). Frozen;
    gradients flow to the inputs only.
    """

    def __init__(self, model: nn.Module, source: str) -> None:
        super().__init__()
        self.model = model
        self.source = source

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.model(a.float(), b.float()).mean()


def find_lpips(net: str = "alex", device: torch.device | str = "cpu") -> tuple[LPIPSLoss | None, str]:
    """(loss module, "") when the backbone is found locally, else (None, why it is missing)."""
    from hypernst_cli.eval.lpips_metric import LPIPSMetric

    metric = LPIPSMetric(net)
    if not metric.available:
        return None, getattr(metric, "missing_hint", "") or "LPIPS backbone not found"
    metric.to(device)
    metric.prepare()
    model = metric._model  # the lpips.LPIPS module it built around the local backbone
    assert model is not None
    return LPIPSLoss(model, metric.source).to(device), ""


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor, *, l2: float, lpips_weight: float,
                        lpips: LPIPSLoss | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """l2 * MSE (+ lpips * LPIPS when the loss module exists); returns (loss, its parts)."""
    mse = F.mse_loss(output.float(), target.float())
    return _plus_lpips(l2 * mse, {"mse": mse.detach()}, output, target, lpips_weight, lpips)


def _plus_lpips(loss: torch.Tensor, parts: dict[str, Any], output: torch.Tensor,
                target: torch.Tensor, weight: float, lpips: LPIPSLoss | None
                ) -> tuple[torch.Tensor, dict[str, Any]]:
    """``loss`` + weight * LPIPS (logged as "lpips") when the module was found and the weight is
    > 0: one place for every paired loss's perceptual term, so a missing backbone drops it alike."""
    if lpips is not None and weight > 0:
        lp = lpips(output, target)
        loss = loss + weight * lp
        parts["lpips"] = lp.detach()
    return loss, parts


def _down2(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def _up2(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass images (finest first) and the low-pass residual last: ``levels`` + 1 tensors."""
    bands = []
    current = x
    for _ in range(levels):
        if min(current.shape[-2:]) < 2:
            break
        low = _down2(current)
        bands.append(current - _up2(low, current.shape[-2:]))
        current = low
    bands.append(current)
    return bands


def laplacian_l1(output: torch.Tensor, target: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Laplacian-pyramid L1 (as "Lap1" in Bojanowski et al. 2018): mean |difference| per band,
    band j weighted by 2^j, so coarse structure (few pixels) counts as much as fine detail; the
    sum is divided by the total weight (same scale as a plain L1)."""
    a = laplacian_pyramid(output.float(), levels)
    b = laplacian_pyramid(target.float(), levels)
    total = output.new_zeros((), dtype=torch.float32)
    weight = 0.0
    for j, (x, y) in enumerate(zip(a, b)):
        total = total + (2.0**j) * (x - y).abs().mean()
        weight += 2.0**j
    return total / weight



def l1_laplacian_loss(output: torch.Tensor, target: torch.Tensor, *, l1: float, laplacian: float,
                      lpips_weight: float, lpips: LPIPSLoss | None, levels: int = 4
                      ) -> tuple[torch.Tensor, dict[str, Any]]:
    """A paired target's loss (stage 2's analogy items, the autoencoder stage's reconstruction):
    l1 * L1 + laplacian * Laplacian-pyramid L1 over ``levels`` bands (+ lpips * LPIPS when the
    loss module exists); returns (loss, its parts)."""
    plain = (output.float() - target.float()).abs().mean()
    pyramid = laplacian_l1(output, target, levels)
    return _plus_lpips(l1 * plain + laplacian * pyramid,
                       {"l1": plain.detach(), "laplacian": pyramid.detach()},
                       output, target, lpips_weight, lpips)

# --- style guidance for stage 2 (not in the paper; 0 by default) --------------------------------

def _moments(values: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and standard deviation over pixels: values [3, N], weights [N] summing to 1."""
    mean = (values * weights).sum(1)
    var = ((values - mean[:, None]) ** 2 * weights).sum(1)
    return mean, (var + 1e-8).sqrt()


def _moment_gap(a: torch.Tensor, a_in: torch.Tensor, b: torch.Tensor, b_in: torch.Tensor) -> torch.Tensor:
    """|mean difference| + |std difference| between the pixels of ``a`` selected by the boolean
    ``a_in`` and those of ``b`` selected by ``b_in`` (values [3, N])."""
    (a_mean, a_std), (b_mean, b_std) = (_moments(a, a_in.float() / a_in.sum()),
                                        _moments(b, b_in.float() / b_in.sum()))
    return (a_mean - b_mean).abs().sum() + (a_std - b_std).abs().sum()


def region_colour_loss(output: torch.Tensor, output_mask: torch.Tensor, target: torch.Tensor,
                       target_mask: torch.Tensor, n_regions: int, min_pixels: int = 64) -> torch.Tensor:
    """Region-matched colour moments: per sample and region present (>= ``min_pixels``) in both
    masks, |mean difference| + |std difference| of the Lab colours of ``output`` in its region and
    of ``target`` in the same region; the whole images are compared when no region matches.
    Images [B, 3, H, W] in [-1, 1], masks [B, H, W] region labels (sizes may differ)."""
    out_lab, tgt_lab = rgb_to_lab(output), rgb_to_lab(target)
    terms = []
    for b in range(output.shape[0]):
        o = out_lab[b].flatten(1)
        t = tgt_lab[b].flatten(1)
        om, tm = output_mask[b].flatten(), target_mask[b].flatten()
        pairs = [(om == region, tm == region) for region in range(n_regions)]
        pairs = [(oin, tin) for oin, tin in pairs
                 if int(oin.sum()) >= min_pixels and int(tin.sum()) >= min_pixels]
        if not pairs:  # no region in common: the whole images
            pairs = [(torch.ones_like(om, dtype=torch.bool), torch.ones_like(tm, dtype=torch.bool))]
        terms.append(torch.stack([_moment_gap(o, oin, t, tin) for oin, tin in pairs]).mean())
    return torch.stack(terms).mean()


def structure_loss(output: torch.Tensor, content: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """L1 between the band-pass (Laplacian) images of the luminance of ``output`` and ``content``,
    finest ``levels`` bands, without the low-pass residual: the content's edges and shapes are
    kept while its colours and tones are free to change."""
    a = laplacian_pyramid(luminance(output.float()), levels)[:-1]
    b = laplacian_pyramid(luminance(content.float()), levels)[:-1]
    return torch.stack([(x - y).abs().mean() for x, y in zip(a, b)]).mean()
