"""ADA-style differentiable augmentation for GAN training on small sets (Karras et al. 2020).

A reduced pipeline: horizontal flip, integer translation (reflect padded), brightness, contrast
and saturation, each applied per sample with probability ``p``. The same pipeline is applied to
real and fake images before the discriminator, and it is differentiable, so the generator is
trained through it and never learns the augmentations (they "leak" only when p is near 1).

``p`` adapts from the sign of D(real): above the target rate the discriminator is overfitting,
so p grows; below it p shrinks (``AdaptiveP``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment(images: torch.Tensor, p: float) -> torch.Tensor:
    """Augment a batch [B, 3, H, W] in [-1, 1]; each transform per sample with probability p."""
    if p <= 0:
        return images
    b, _, h, w = images.shape
    dev = images.device
    x = images

    def chosen() -> torch.Tensor:
        return (torch.rand(b, 1, 1, 1, device=dev) < p).to(x.dtype)

    # horizontal flip
    x = torch.lerp(x, x.flip(3), chosen())
    # integer translation up to 1/8 of the side, reflect padded
    pad = max(1, h // 8)
    shift = (torch.randint(-pad, pad + 1, (b, 2), device=dev) * chosen().view(b, 1).long())
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = (torch.arange(h, device=dev)[None] + pad - shift[:, :1])  # [B, H]
    cols = (torch.arange(w, device=dev)[None] + pad - shift[:, 1:])  # [B, W]
    x = torch.stack([padded[i][:, rows[i]][:, :, cols[i]] for i in range(b)])
    # brightness (additive), contrast (around the mean), saturation (around the grey value)
    x = x + torch.randn(b, 1, 1, 1, device=dev) * 0.2 * chosen()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    factor = torch.exp2(torch.randn(b, 1, 1, 1, device=dev) * 0.5 * chosen())
    x = (x - mean) * factor + mean
    grey = x.mean(dim=1, keepdim=True)
    factor = torch.exp2(torch.randn(b, 1, 1, 1, device=dev) * 1.0 * chosen())
    return (x - grey) * factor + grey


class AdaptiveP:
    """The augmentation probability, adjusted every ``interval`` steps from sign(D(real))."""

    def __init__(self, target: float, speed_kimg: float, batch_images: int, interval: int = 4) -> None:
        self.target = target
        self.speed_kimg = speed_kimg
        self.batch_images = batch_images
        self.interval = interval
        self.p = 0.0
        self._sum = 0.0
        self._count = 0

    def observe(self, real_logits: torch.Tensor) -> None:
        self._sum += float(torch.sign(real_logits.detach()).sum())
        self._count += real_logits.numel()

    def update(self, step: int, distributed: bool = False) -> None:
        if (step + 1) % self.interval or self._count == 0:
            return
        stats = torch.tensor([self._sum, float(self._count)], dtype=torch.float64)
        if distributed:
            torch.distributed.all_reduce(stats)
        rate = float(stats[0] / stats[1])
        step_size = self.batch_images * self.interval / (self.speed_kimg * 1000.0)
        self.p = min(1.0, max(0.0, self.p + (1.0 if rate > self.target else -1.0) * step_size))
        self._sum, self._count = 0.0, 0

    def state(self) -> dict[str, float]:
        return {"p": self.p, "sum": self._sum, "count": self._count}

    def load(self, state: dict[str, float]) -> None:
        self.p = float(state.get("p", 0.0))
        self._sum = float(state.get("sum", 0.0))
        self._count = int(state.get("count", 0))
