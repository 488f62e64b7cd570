"""Named model configs (``tiny``, ``compact``, ``paper``): one code path, several sizes.

A config describes every network of the pipeline. It travels with weights as JSON
(``ModelConfig.to_dict`` / ``ModelConfig.from_dict``), so a checkpoint folder is self-describing.
This module is import-light (no torch) so the CLI can list configs instantly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hypernst_cli.errors import UsageError


@dataclass(frozen=True)
class GeneratorConfig:
    """StyleGAN2 generator (rosinality layout)."""

    resolution: int = 256
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: float = 2  # fractional values narrow the high resolutions
    lr_mlp: float = 0.01
    # Caps the per-resolution channel count (StyleGAN2 uses 512); smaller configs lower it.
    max_channels: int = 512
    # The spatial path (Feature-Style encoder / HFGI; not in the paper): the encoder also gives a
    # feature map F at this resolution, which replaces the generator's own features there (the
    # layers before it are skipped). 0 = off: W+ only, as the paper (models/stylegan2.py).
    feature_resolution: int = 0

    def __post_init__(self) -> None:
        r_f = self.feature_resolution
        if r_f and (r_f < 8 or r_f & (r_f - 1) or r_f >= self.resolution):
            raise UsageError(
                f"generator: feature_resolution must be 0 (off) or a power of two from 8 up to "
                f"half the resolution ({self.resolution // 2}), got {r_f}",
                hint="fix the model's config.json (generator section)")


@dataclass(frozen=True)
class EncoderConfig:
    """e4e encoder: IR-SE trunk + feature-pyramid map-to-style heads."""

    depth: int = 50  # IR-SE depth: 50, 100, 152, or 0 for a custom ``blocks`` layout
    blocks: tuple[int, ...] = ()  # units per stage when depth == 0 (four stages)
    width: int = 64  # channels of the first stage (x2 per stage up to 512)
    input_size: int = 256  # square input side; the trunk downsamples by 16 (e4e: 256)
    head_width: int = 0  # channels of the per-latent style heads; 0 = the latent width (e4e)
    # hidden channels of the spatial-feature head (used only when generator.feature_resolution
    # is set); 0 = the generator's channel count at that resolution
    feature_width: int = 0


@dataclass(frozen=True)
class AladinConfig:
    """ALADIN-ViT style encoder."""

    image_size: int = 224
    patch_size: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    code_dim: int = 256
    # Input normalisation after resizing to image_size (the official ALADIN-ViT: 0.5 / 0.5)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class HyperNetConfig:
    """HyperNST hyper-network."""

    # content encoder trunk on the 6-channel (content, output) input: resnet34, resnet18, convnet
    backbone: str = "resnet34"
    feature_channels: int = 256  # content encoder output: 16x16xfeature_channels
    mask_channels: int = 256  # E_mask output: 16x16xmask_channels
    feature_size: int = 16
    layers: str = "all"  # which generator layers get offsets ("all" or comma-separated indices)
    # first layer trained in stage 2: the paper's "layer 13" (indexing: models/stylegan2.py);
    # for 64/128 px the R/4 toRGB (7/10), see stylegan2.paper_start_layer
    start_layer: int = 13
    shared_heads: bool = True  # same-shaped conv layers share one output hyper-layer
    iterations: int = 3
    head_hidden: int = 256  # width of each refinement head
    backbone_width: int = 32  # width of the "convnet"/"tiny" trunk (the ResNets have their own)
    # Eq. 2's A(s): the global ALADIN code of the style image enters every head. False here so a
    # model file saved before this field existed (its config.json lacks it) loads as it was
    # trained; the `paper` and `compact256` configs set it.
    global_code: bool = False
    # Not in the paper (0 = off): the width of the style-conditioned content skip, the content
    # at full resolution processed under the style's region codes and added to the generator's
    # features in its last block (models/hypernet.py, ContentSkip): the path by which texture
    # that follows the photo's edges (lines, hatching, flat fills) can reach the output.
    skip_width: int = 0
    # Not in the paper (0 = off; needs skip_width): channels of fixed white noise the content skip
    # reads beside the photo, a grain the style can shape into strokes, dots and paper where the
    # photo has none (the procedural media draw theirs from noise too).
    skip_noise: int = 0
    # Not in the paper (0 = the generator's resolution): the side at which the content encoder
    # reads (content, current output); larger inputs are resized to it. A model grown to a higher
    # resolution (train/extend.py --resolution) keeps its trained encoder this way; the content
    # skip still reads the content at full resolution.
    input_size: int = 0


@dataclass(frozen=True)
class StyleCodeConfig:
    """Region-averaged ALADIN codes (paper 3.2, Eq. 1)."""

    patches_per_region: int = 16  # P random patches drawn per region
    patch_min: float = 0.15  # patch side as a fraction of the image side
    patch_max: float = 0.35
    coverage: float = 0.8  # fraction of a patch's pixels that must lie in the region
    max_tries: int = 64  # draws per region before falling back
    seed: int = 0


@dataclass(frozen=True)
class PatchDiscConfig:
    """Patch co-occurrence discriminator (Swapping Autoencoder style), region matched."""

    patch_size: int = 32
    patches_per_region: int = 3
    channels: int = 128  # encoder width at the patch resolution, doubled per downsample
    max_channels: int = 384  # cap of the encoder width (Swapping Autoencoder's default)
    hidden: int = 2048  # width of the pair classifier MLP


@dataclass(frozen=True)
class DetailConfig:
    """Detail restoration after the generator (not in the paper; 0 = off): the output gets
    ``strength`` x the content's luminance detail finer than ``sigma`` pixels (at the model's
    resolution). For generators too small to draw fine detail themselves; never applied to
    edited latents, whose geometry differs from the content's."""

    strength: float = 0.0
    sigma: float = 2.0

    def __post_init__(self) -> None:
        if not (self.strength >= 0 and self.sigma > 0):  # also refuses NaN
            raise UsageError(
                f"detail: strength must be >= 0 and sigma > 0, got strength={self.strength}, "
                f"sigma={self.sigma}", hint="fix the model's config.json (detail section)")


@dataclass(frozen=True)
class PaletteConfig:
    """The palette post-process (not in the paper; 0 = off, ``pipeline/palette.py``): the
    stylized output's Lab histograms are matched to the style image's by ``amount`` x the style
    strength; ``regions``: how far each region (background, face, hair) takes the style's same
    region's palette rather than the whole image's (0: the output moves as one); ``inks``: how
    far each pixel is then pulled to the nearer of the style's two main colours, x the strength
    (0: not at all); ``ink_regions``: as ``regions``, for those colours (None: ``regions``)."""

    amount: float = 0.0
    regions: float = 0.0
    inks: float = 0.0
    ink_regions: float | None = None

    def __post_init__(self) -> None:
        for name in ("amount", "regions", "inks", "ink_regions"):
            value = getattr(self, name)
            if value is None and name == "ink_regions":
                continue
            if not 0.0 <= value <= 1.0:  # also refuses NaN
                raise UsageError(f"palette: {name} must be between 0 and 1, got {value}",
                                 hint="fix the model's config.json (palette section)")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    aladin: AladinConfig = field(default_factory=AladinConfig)
    hypernet: HyperNetConfig = field(default_factory=HyperNetConfig)
    style_codes: StyleCodeConfig = field(default_factory=StyleCodeConfig)
    patch_disc: PatchDiscConfig = field(default_factory=PatchDiscConfig)
    detail: DetailConfig = field(default_factory=DetailConfig)
    palette: PaletteConfig = field(default_factory=PaletteConfig)
    description: str = ""

    @property
    def resolution(self) -> int:
        return self.generator.resolution

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from JSON; unknown keys are rejected so a typo never passes silently."""
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            sub = _SECTIONS.get(f.name)
            kwargs[f.name] = _build(sub, value, f.name) if sub else value
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UsageError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**kwargs)

    def replace(self, **sections: Any) -> ModelConfig:
        return dataclasses.replace(self, **sections)


_SECTIONS: dict[str, type] = {
    "generator": GeneratorConfig,
    "encoder": EncoderConfig,
    "aladin": AladinConfig,
    "hypernet": HyperNetConfig,
    "style_codes": StyleCodeConfig,
    "patch_disc": PatchDiscConfig,
    "detail": DetailConfig,
    "palette": PaletteConfig,
}


def _build(kind: type, value: dict[str, Any], section: str) -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = set(value) - names
    if unknown:
        raise UsageError(f"unknown keys in config section '{section}': {', '.join(sorted(unknown))}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    return kind(**fixed)


_REGISTRY: dict[str, ModelConfig] = {}


def register_config(config: ModelConfig) -> ModelConfig:
    _REGISTRY[config.name] = config
    return config


def config_names() -> list[str]:
    return list(_REGISTRY)


def get_config(name: str) -> ModelConfig:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown model config '{name}'", hint=f"choose one of: {', '.join(_REGISTRY)}"
        ) from None


register_config(
    ModelConfig(
        name="tiny",
        description="unit tests: random init, forward in well under a second on a CPU",
        generator=GeneratorConfig(
            resolution=64, style_dim=64, n_mlp=2, channel_multiplier=1, max_channels=64
        ),
        encoder=EncoderConfig(depth=0, blocks=(1, 1, 1, 1), width=16, input_size=64),
        aladin=AladinConfig(
            image_size=64, patch_size=16, dim=64, depth=2, heads=2, mlp_dim=128, code_dim=32
        ),
        hypernet=HyperNetConfig(
            backbone="tiny",
            feature_channels=32,
            mask_channels=32,
            feature_size=8,
            start_layer=7,  # R/4 toRGB of a 64 px generator (paper_start_layer(64))
            head_hidden=32,
            backbone_width=16,
        ),
        style_codes=StyleCodeConfig(patches_per_region=4),
        patch_disc=PatchDiscConfig(patch_size=16, channels=16, max_channels=32, hidden=64),
    )
)

register_config(
    ModelConfig(
        name="compact",
        description="the compact architecture at 128 px, small enough to ship and run on a CPU (the "
                    "embedded model is it grown to 256 px: its own config.json)",
        # Narrow at high resolutions (128 px: 32 channels, 64 px: 64, <= 32 px: 128) so a forward
        # pass costs ~2.6 GFLOPs: fast on a CPU, and trainable on one.
        generator=GeneratorConfig(
            resolution=128, style_dim=256, n_mlp=4, channel_multiplier=0.25, max_channels=128
        ),
        encoder=EncoderConfig(depth=0, blocks=(2, 2, 2, 2), width=16, input_size=128, head_width=64),
        aladin=AladinConfig(
            image_size=128, patch_size=16, dim=192, depth=4, heads=3, mlp_dim=384, code_dim=128
        ),
        hypernet=HyperNetConfig(
            backbone="convnet",
            backbone_width=32,
            feature_channels=64,
            mask_channels=64,
            feature_size=8,
            start_layer=10,  # R/4 toRGB of a 128 px generator (paper_start_layer(128))
            head_hidden=64,
        ),
        style_codes=StyleCodeConfig(patches_per_region=8),
        patch_disc=PatchDiscConfig(patch_size=32, channels=32, max_channels=128, hidden=256),
        # a 1.9 M-parameter generator trained on a CPU draws a blurred face: the content's detail
        # finer than 2 px is restored on top (docs/compact-model.md measures both)
        detail=DetailConfig(strength=1.0, sigma=2.0),
    )
)

register_config(
    ModelConfig(
        name="compact256",
        description="256 px compact model with the spatial path (encoder features F at 64 px)",
        # compact's channel table at 256 px (64 px: 64 channels, 128: 32, 256: 16) plus the
        # spatial path: the encoder's F at 64 px (64 + 3 channels) replaces the generator's
        # features there, so the W+ bottleneck no longer decides the detail (docs/compact-model.md,
        # "Spatial features"). r_f = 64: F keeps 4x4-pixel detail, the layers that run on it are
        # the paper's stage-2 layers (13..19, the R/4 toRGB on), and a stage-1 step costs
        # compact's FLOPs (1.5x its CPU time); at 32 the 64 px block would run too (+28 % FLOPs).
        generator=GeneratorConfig(
            resolution=256, style_dim=256, n_mlp=4, channel_multiplier=0.25, max_channels=128,
            feature_resolution=64,
        ),
        # 256 px input (the detail F carries must be seen); narrow style and feature heads: at
        # 256 px they read a 64x64 map, and the autoencoder step is what the CPU budget limits
        encoder=EncoderConfig(depth=0, blocks=(2, 2, 2, 2), width=16, input_size=256, head_width=32,
                              feature_width=32),
        # compact's ALADIN, style codes and patch discriminator; its hyper-network from layer 13
        aladin=get_config("compact").aladin,
        hypernet=dataclasses.replace(
            get_config("compact").hypernet,
            start_layer=13,  # paper_start_layer(256); also the first layer that runs on F
            global_code=True,  # Eq. 2's A(s)
        ),
        style_codes=get_config("compact").style_codes,
        patch_disc=get_config("compact").patch_disc,
        detail=DetailConfig(strength=0.0),  # F carries the detail: no post-process
    )
)

register_config(
    ModelConfig(
        name="paper",
        description="the paper: 256 px StyleGAN2 (x2 channels), e4e IR-SE50, ALADIN-ViT, ResNet34",
        hypernet=HyperNetConfig(global_code=True),  # Eq. 2: H(M(s) ^ E_c(c), A(s))
    )
)
