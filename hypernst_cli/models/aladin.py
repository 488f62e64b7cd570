"""ALADIN-ViT style encoder (Ruta et al.: ALADIN, ICCV 2021; the ViT variant of StyleBabel, 2022).

An image -> an L2-normalised style code; images of similar artistic style get nearby codes.
The official model (DanRuta/ALADIN) is a ViT-B/16 at 224 px: 16x16 patch embedding conv, a class
token and learned position embeddings, 12 pre-norm transformer blocks (768 wide, 12 heads, MLP
3072, GELU, LayerNorm eps 1e-6), a final LayerNorm; the class token then goes through a projection
head (LeakyReLU, Linear dim -> (dim + code)/2, LeakyReLU, Linear -> code, 256 there), and the code
is divided by its L2 norm. Inputs are resized to 224x224 and normalised with mean 0.5 / std 0.5.

Our parameter names are our own; ``official_encoders.aladin_to_ours`` renames the official ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hypernst_cli.configs import AladinConfig
from hypernst_cli.errors import UsageError

LN_EPS = 1e-6


def head_hidden(cfg: AladinConfig) -> int:
    """Width of the projection head's hidden layer (the official: (768 + 256) / 2 = 512)."""
    return (cfg.dim + cfg.code_dim) // 2


class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:  # [B, N, D] -> [B, heads, N, D/heads]
            return t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = MLP(dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ProjectionHead(nn.Module):
    """Class token -> style code: LeakyReLU, Linear, LeakyReLU, Linear (as the official head)."""

    def __init__(self, dim: int, hidden: int, code_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, code_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.leaky_relu(self.fc1(F.leaky_relu(x, 0.01)), 0.01))


class AladinViT(nn.Module):
    """ALADIN-ViT: preprocessed images [B, 3, S, S] -> unit-norm style codes [B, code_dim]."""

    def __init__(self, cfg: AladinConfig) -> None:
        super().__init__()
        if cfg.image_size % cfg.patch_size:
            raise UsageError(
                f"ALADIN image_size {cfg.image_size} is not a multiple of "
                f"patch_size {cfg.patch_size}"
            )
        if cfg.dim % cfg.heads:
            raise UsageError(f"ALADIN dim {cfg.dim} is not divisible by heads {cfg.heads}")
        self.cfg = cfg
        n_patches = (cfg.image_size // cfg.patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, cfg.dim, cfg.patch_size, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n_patches + 1, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, cfg.mlp_dim) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.dim, eps=LN_EPS)
        self.head = ProjectionHead(cfg.dim, head_hidden(cfg), cfg.code_dim)
        # Constants of the input transform; not weights, so kept out of the state dict.
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB [B, 3, H, W] in [0, 1] -> resized to image_size (bilinear, antialiased), normalised.

        The aspect ratio is not kept, as in the official transform (Resize((224, 224))).
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise UsageError(f"ALADIN expects RGB images [B, 3, H, W], got {list(images.shape)}")
        size = self.cfg.image_size
        x = images.to(self.mean.dtype)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.cfg.image_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != size or x.shape[3] != size:
            raise UsageError(
                f"ALADIN expects preprocessed images [B, 3, {size}, {size}], got {list(x.shape)}",
                hint="call preprocess() or encode() on images in [0, 1]",
            )
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # [B, patches, dim], row-major
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed
        for block in self.blocks:
            tokens = block(tokens)
        code = self.head(self.norm(tokens)[:, 0])
        return F.normalize(code, dim=1)

    def encode(self, images01: torch.Tensor) -> torch.Tensor:
        """preprocess + forward: RGB [B, 3, H, W] in [0, 1] -> codes [B, code_dim]."""
        return self(self.preprocess(images01))
