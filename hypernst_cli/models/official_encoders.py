"""Official encoder checkpoints -> our modules: key mapping and config inference.

- e4e (omertov/encoder4editing, e.g. ``e4e_ffhq_encode.pt``): a dict with ``state_dict`` (the pSp
  wrapper: ``encoder.*`` plus the generator under ``decoder.*``), a top-level ``latent_avg``
  ([n_latent, 512] for the released checkpoints) and ``opts``. Our ``Encoder4Editing`` keeps the
  official names, so the mapping strips ``encoder.`` and adds the ``latent_avg`` buffer.
- ALADIN-ViT (DanRuta/ALADIN, ``aladinVIT_bamfg_64.47.pt``): the state dict of an ``AViT`` wrapper
  (``enc_style.transformer.*`` and ``enc_style.proj_head.*``); renamed to our ``AladinViT`` names.

Pure functions on dicts of tensors: reading the files (``torch.load(weights_only=True)``) and
writing safetensors belong to the converters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from hypernst_cli.configs import AladinConfig, EncoderConfig
from hypernst_cli.errors import WeightsIntegrityError
from hypernst_cli.models.e4e import MAX_CHANNELS, STANDARD_DEPTHS

Tensor = torch.Tensor

# --- e4e -----------------------------------------------------------------------------------------

_E4E_PREFIX = "encoder."


def _e4e_encoder_entries(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The encoder's entries without prefix, from a pSp state dict or an encoder-only one."""
    if any(k.startswith(_E4E_PREFIX) for k in sd):
        out = {k[len(_E4E_PREFIX):]: v for k, v in sd.items() if k.startswith(_E4E_PREFIX)}
    else:
        out = {k: v for k, v in sd.items() if not k.startswith("decoder.")}
    if "input_layer.0.weight" not in out or "styles.0.linear.weight" not in out:
        raise WeightsIntegrityError(
            "not an e4e encoder state dict (no input_layer / styles entries)",
            hint="pass the 'state_dict' of an e4e checkpoint such as e4e_ffhq_encode.pt",
        )
    return out


def _count_indexed(sd: Mapping[str, Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in sd if (m := pattern.match(k))}
    if found != set(range(len(found))):
        raise WeightsIntegrityError(f"the '{prefix}N' entries of the state dict are not contiguous")
    return len(found)


def e4e_to_ours(
    ckpt_state_dict: Mapping[str, Tensor], latent_avg: Tensor | None
) -> dict[str, Tensor]:
    """Official e4e (pSp) state dict + its ``latent_avg`` -> a state dict for ``Encoder4Editing``.

    ``latent_avg`` may be [n_latent, style_dim] (the released checkpoints), [style_dim] or
    [1, style_dim] (repeated over the latents), or None (zeros: no average latent was used).
    """
    out = _e4e_encoder_entries(ckpt_state_dict)
    if latent_avg is None:
        latent_avg = out.get("latent_avg")
    out.pop("latent_avg", None)
    # Checkpoints written before PyTorch 1.1 lack BatchNorm's counter; it is unused in eval.
    for key in [k for k in out if k.endswith(".running_mean")]:
        counter = key[: -len("running_mean")] + "num_batches_tracked"
        if counter not in out:
            out[counter] = torch.zeros((), dtype=torch.long, device=out[key].device)

    n_latent = _count_indexed(out, "styles.")
    style_dim = out["styles.0.linear.weight"].shape[0]
    if latent_avg is None:
        avg = torch.zeros(n_latent, style_dim, device=out["styles.0.linear.weight"].device)
    else:
        avg = latent_avg.reshape(-1, latent_avg.shape[-1]) if latent_avg.ndim else latent_avg
        if avg.ndim != 2 or avg.shape[1] != style_dim or avg.shape[0] not in (1, n_latent):
            raise WeightsIntegrityError(
                f"latent_avg of shape {list(latent_avg.shape)} does not fit {n_latent} latents "
                f"of {style_dim} values"
            )
        avg = avg.expand(n_latent, style_dim).clone()
    out["latent_avg"] = avg
    return out


def infer_e4e_config(sd: Mapping[str, Tensor]) -> tuple[EncoderConfig, int, int]:
    """(EncoderConfig, n_latent, style_dim) of an e4e state dict (official or ours).

    Stages are found where the unit's channel count changes, so a layout whose stages share a
    channel count (a width capped at 512 early) cannot be inferred and raises.
    """
    enc = _e4e_encoder_entries(sd)
    width = enc["input_layer.0.weight"].shape[0]
    n_units = _count_indexed(enc, "body.")
    channels = [enc[f"body.{i}.res_layer.1.weight"].shape[0] for i in range(n_units)]
    units: list[int] = []
    for i, c in enumerate(channels):
        if i == 0 or c != channels[i - 1]:
            units.append(1)
        else:
            units[-1] += 1
    expected = [min(width * 2**i, MAX_CHANNELS) for i in range(4)]
    stage_channels = sorted(set(channels))
    if len(units) != 4 or stage_channels != expected:
        raise WeightsIntegrityError(
            f"cannot infer the e4e trunk layout (unit channels {stage_channels}, width {width})",
            hint="build the encoder from the config saved with the weights instead",
        )
    # styles.0 reads the 1/16 map and halves it down to 1x1 (its convs sit at even indices,
    # between them the parameter-free LeakyReLUs).
    n_convs = len([k for k in enc if re.fullmatch(r"styles\.0\.convs\.\d+\.weight", k)])
    input_size = 16 * 2**n_convs
    depth = next((d for d, u in STANDARD_DEPTHS.items() if tuple(units) == u and width == 64), 0)
    n_latent = _count_indexed(enc, "styles.")
    style_dim = enc["styles.0.linear.weight"].shape[0]
    hidden = enc["styles.0.linear.weight"].shape[1]  # the heads' width (e4e: style_dim)
    cfg = EncoderConfig(
        depth=depth, blocks=() if depth else tuple(units), width=width, input_size=input_size,
        head_width=0 if hidden == style_dim else hidden,
    )
    return cfg, n_latent, style_dim


# --- ALADIN-ViT ----------------------------------------------------------------------------------

# Official name (after the wrapper prefix) -> ours, first match wins; {i} is a block index.
_ALADIN_RENAMES: list[tuple[str, str]] = [
    ("transformer.embeddings.patch_embeddings.", "patch_embed."),
    ("transformer.embeddings.cls_token", "cls_token"),
    ("transformer.embeddings.position_embeddings", "pos_embed"),
    ("transformer.encoder.encoder_norm.", "norm."),
    ("transformer.encoder.layer.{i}.attention_norm.", "blocks.{i}.norm1."),
    ("transformer.encoder.layer.{i}.ffn_norm.", "blocks.{i}.norm2."),
    ("transformer.encoder.layer.{i}.attn.query.", "blocks.{i}.attn.q."),
    ("transformer.encoder.layer.{i}.attn.key.", "blocks.{i}.attn.k."),
    ("transformer.encoder.layer.{i}.attn.value.", "blocks.{i}.attn.v."),
    ("transformer.encoder.layer.{i}.attn.out.", "blocks.{i}.attn.proj."),
    ("transformer.encoder.layer.{i}.ffn.fc1.", "blocks.{i}.mlp.fc1."),
    ("transformer.encoder.layer.{i}.ffn.fc2.", "blocks.{i}.mlp.fc2."),
    ("proj_head.fc1.", "head.fc1."),
    ("proj_head.fc2.", "head.fc2."),
]
_ALADIN_PATTERNS = [
    (re.compile("^" + re.escape(src).replace(r"\{i\}", r"(\d+)")), dst)
    for src, dst in _ALADIN_RENAMES
]
_ALADIN_WRAPPERS = ("module.", "enc_style.")  # DataParallel, then main.py's AViT


def _rename_aladin_key(key: str) -> str:
    for prefix in _ALADIN_WRAPPERS:
        if key.startswith(prefix):
            key = key[len(prefix):]
    for pattern, dst in _ALADIN_PATTERNS:
        m = pattern.match(key)
        if m:
            new = dst.replace("{i}", m.group(1)) if m.groups() else dst
            return new + key[m.end():]
    raise WeightsIntegrityError(
        f"unexpected entry '{key}' in the ALADIN-ViT state dict",
        hint="expected the ViT checkpoint of DanRuta/ALADIN (aladinVIT_bamfg_64.47.pt)",
    )


def aladin_to_ours(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official ALADIN-ViT (AViT) state dict -> a state dict for ``AladinViT``."""
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        new = _rename_aladin_key(key)
        if new in out:
            raise WeightsIntegrityError(f"the ALADIN-ViT state dict holds '{new}' twice")
        out[new] = value
    if "patch_embed.weight" not in out or "head.fc2.weight" not in out:
        raise WeightsIntegrityError(
            "not an ALADIN-ViT state dict (no patch embedding or projection head)",
            hint="expected the ViT checkpoint of DanRuta/ALADIN (aladinVIT_bamfg_64.47.pt)",
        )
    return out


def infer_aladin_config(sd: Mapping[str, Tensor], heads: int | None = None) -> AladinConfig:
    """The ``AladinConfig`` of an ALADIN-ViT state dict (official names or ours).

    The head count leaves no trace in the weights; it defaults to dim / 64 (ViT-B/16: 12 heads,
    the official model) unless given.
    """
    ours = sd if "patch_embed.weight" in sd else aladin_to_ours(sd)
    dim, _, patch, _ = ours["patch_embed.weight"].shape
    n_tokens = ours["pos_embed"].shape[1]
    grid = round((n_tokens - 1) ** 0.5)
    if grid * grid != n_tokens - 1:
        raise WeightsIntegrityError(
            f"ALADIN position embeddings of {n_tokens} tokens are not a square grid"
        )
    depth = _count_indexed(ours, "blocks.")
    if heads is None:
        if dim % 64:
            raise WeightsIntegrityError(
                f"cannot infer the ALADIN head count for width {dim}", hint="pass heads explicitly"
            )
        heads = dim // 64
    cfg = AladinConfig(
        image_size=grid * patch,
        patch_size=patch,
        dim=dim,
        depth=depth,
        heads=heads,
        mlp_dim=ours["blocks.0.mlp.fc1.weight"].shape[0] if depth else 4 * dim,
        code_dim=ours["head.fc2.weight"].shape[0],
    )
    hidden = ours["head.fc1.weight"].shape[0]
    if hidden != (cfg.dim + cfg.code_dim) // 2:
        raise WeightsIntegrityError(
            f"ALADIN projection head width {hidden} is not (dim + code_dim) / 2 = "
            f"{(cfg.dim + cfg.code_dim) // 2}"
        )
    return cfg
