"""Patch co-occurrence discriminator (Swapping Autoencoder, sec. 3.2), matched region to region.

D_patch answers "do these query patches have the texture of those reference patches?": a patch
encoder maps each square patch to a feature; the features of the reference patches are averaged
(the aggregate of Swapping Autoencoder); a classifier reads the concatenated (query feature,
aggregated reference feature) pair and gives one logit per query patch. In HyperNST the reference
patches come from one region (background, face, hair) of the style image and the query patches
from the same region of the stylized output, so textures are compared region to region.

The patches themselves are drawn by :mod:`hypernst_cli.models.patches` (``region_boxes``,
``crop_patches``): this module is the network only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from hypernst_cli.models.stylegan2 import ConvLayer, EqualLinear, ResBlock, count_parameters  # noqa: F401

if TYPE_CHECKING:
    from hypernst_cli.configs import PatchDiscConfig


class PatchCooccurrenceDiscriminator(nn.Module):
    """Patch encoder (StyleGAN2 residual blocks down to 2x2) + pair classifier (an MLP)."""

    def __init__(self, patch_size: int = 32, channels: int = 128, max_channels: int = 384,
                 hidden: int = 2048) -> None:
        super().__init__()
        log_size = int(math.log2(patch_size))
        if patch_size < 8 or 2**log_size != patch_size:
            raise ValueError(f"patch size must be a power of two >= 8, got {patch_size}")
        self.patch_size = patch_size
        c = min(channels, max_channels)
        layers: list[nn.Module] = [ConvLayer(3, c, 3)]
        for _ in range(log_size, 2, -1):  # patch_size -> 4 px, doubling the width up to the cap
            out = min(c * 2, max_channels)
            layers.append(ResBlock(c, out))
            c = out
        # as in Swapping Autoencoder: a wide residual block at 4x4, then a valid 3x3 conv -> 2x2
        layers.append(ResBlock(c, max_channels * 2, downsample=False))
        layers.append(ConvLayer(max_channels * 2, max_channels, 3, padding=0))
        self.encoder = nn.Sequential(*layers)
        self.feature_dim = max_channels * 2 * 2
        self.classifier = nn.Sequential(
            EqualLinear(self.feature_dim * 2, hidden, activation="fused_lrelu"),
            EqualLinear(hidden, hidden, activation="fused_lrelu"),
            EqualLinear(hidden, hidden // 2, activation="fused_lrelu"),
            EqualLinear(hidden // 2, 1),
        )

    def extract_features(self, patches: torch.Tensor) -> torch.Tensor:
        """Patches [..., 3, s, s] -> features [..., feature_dim]."""
        lead = patches.shape[:-3]
        if patches.shape[-3:] != (3, self.patch_size, self.patch_size):
            raise ValueError(f"expected patches [..., 3, {self.patch_size}, {self.patch_size}], "
                             f"got {tuple(patches.shape)}")
        feats = self.encoder(patches.reshape(-1, *patches.shape[-3:]))
        return feats.flatten(1).view(*lead, self.feature_dim)

    @staticmethod
    def aggregate(reference_features: torch.Tensor) -> torch.Tensor:
        """Mean over the reference patches: [B, T, D] -> [B, D]."""
        return reference_features.mean(dim=1)

    def discriminate(self, query_features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Query features [B, T, D] and aggregated reference [B, D] -> logits [B, T]."""
        b, t, d = query_features.shape
        ref = reference.unsqueeze(1).expand(b, t, d)
        pairs = torch.cat([query_features, ref], dim=-1).reshape(b * t, 2 * d)
        return self.classifier(pairs).view(b, t)

    def forward(self, query_patches: torch.Tensor, reference_patches: torch.Tensor) -> torch.Tensor:
        """Query [B, Tq, 3, s, s] and reference [B, Tr, 3, s, s] patches -> logits [B, Tq]
        (high: the query patches share the reference patches' texture)."""
        reference = self.aggregate(self.extract_features(reference_patches))
        return self.discriminate(self.extract_features(query_patches), reference)


def build_patch_disc(cfg: PatchDiscConfig) -> PatchCooccurrenceDiscriminator:
    return PatchCooccurrenceDiscriminator(patch_size=cfg.patch_size, channels=cfg.channels,
                                          max_channels=cfg.max_channels, hidden=cfg.hidden)
