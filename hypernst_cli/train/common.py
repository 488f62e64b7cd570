"""What the model stages share: the model config and init folder, data, style codes, export.

Every stage starts from ``init`` (a model folder, a model .safetensors file or a registry name)
or, where it can, from scratch with the config named by ``model``. Networks a stage neither
trains nor finds in ``init`` are exported freshly initialised and the model card says so, so that
every export is a complete model folder (``load_models(folder, None, device, INFERENCE_PARTS)``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from hypernst_cli.configs import ModelConfig
from hypernst_cli.errors import HypernstError, NoFaceError, UsageError
from hypernst_cli.train.data import ImageSet, ResumableSampler, Sample, make_batch
from hypernst_cli.train.trainer import Stage

#: what the model card calls each origin
ORIGINS = {"trained": "trained in this run", "init": "carried over from init",
           "random": "random initialisation (NOT trained)"}


def resolve_model(cfg: dict[str, Any]) -> tuple[ModelConfig, Any | None, str]:
    """(model config, loaded init ModelFolder or None, init source) from ``init`` / ``model``."""
    from hypernst_cli.configs import get_config
    from hypernst_cli.weights.checkpoint import load_model_folder, resolve_weights

    init = str(cfg.get("init") or "")
    if init:
        resolved = resolve_weights(init, str(cfg.get("model") or "compact"))
        folder = load_model_folder(resolved.path)
        return folder.model_config(), folder, str(resolved.path)
    model = str(cfg.get("model") or "compact")
    if model.endswith(".json") or Path(model).is_file():
        try:
            data = json.loads(Path(model).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{model}: cannot read the model config ({exc})") from None
        data.setdefault("name", Path(model).stem)
        return ModelConfig.from_dict(data), None, ""
    return get_config(model), None, ""


def new_folder_main(dst: Path, write: Callable[[], Path]) -> int:
    """The end of a script that writes a new model folder (train/assemble.py, train/extend.py):
    never over an existing ``dst``; an error is one line on stderr and its exit code (errors.py:
    2 for bad usage, 3 for missing weights, ...)."""
    try:
        if dst.exists():
            raise UsageError(f"{dst} exists", hint="choose a new folder")
        out = write()
    except HypernstError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {out}")
    return 0


def progressive_stage(step: int, every: int, n_latent: int) -> int:
    """e4e's progressive training: one more W+ delta every ``every`` steps (0: all at once)."""
    last = n_latent - 1
    return last if every <= 0 else min(step // every, last)


#: the stage that trains each network a later stage may need in init (for its error's hint)
TRAINED_BY = {"generator": "generator", "encoder": "encoder", "aladin": "aladin",
              "hypernet": "reconstruct"}


class ImageUnion:
    """Several ImageSets seen as one (the generator and reconstruction stages use both splits)."""

    def __init__(self, sets: list[ImageSet]) -> None:
        self.sets = sets
        self.samples: list[Sample] = [s for d in sets for s in d.samples]
        self._where = [(k, i) for k, d in enumerate(sets) for i in range(len(d))]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        k, i = self._where[index]
        return self.sets[k].load(i)


class PreparedMasks:
    """The region masks of a prepared folder (a ``code_cache.RegionMasks``): looks a mask up by
    the image's pixels.

    StyleCodeProvider calls its parser on the decoded image; the masks were made by ``hypernst
    prepare``, so the lookup is exact. An image without a mask file (a style image with no face)
    raises NoFaceError: its codes fall back to the global code everywhere.
    """

    parser_id = "prepared-masks"

    def __init__(self, samples: list[Sample]) -> None:
        from PIL import Image

        from hypernst_cli.io import load_image

        self._masks: dict[str, np.ndarray] = {}
        for s in samples:
            if s.mask is not None:
                self._masks[self.key(load_image(s.image))] = np.asarray(Image.open(s.mask).convert("L"))

    @staticmethod
    def key(image: np.ndarray) -> str:
        return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()

    def parse_image(self, image: np.ndarray) -> np.ndarray:
        mask = self._masks.get(self.key(image))
        if mask is None:
            raise NoFaceError("<image>", "no mask in the prepared folder")
        return mask


def code_tables(provider: Any, samples: list[Sample]) -> torch.Tensor:
    """[N, 4, D] code tables (region codes, then the global code) of every sample (computed
    once, cached on disk)."""
    return torch.stack([provider.for_file(s.image).table.float() for s in samples])


@dataclass
class ModelStage(Stage):
    """A stage on the project's networks; subclasses implement ``setup`` and ``train_step``."""

    model_cfg: ModelConfig | None = None
    init_folder: Any = None
    init_source: str = ""
    networks: dict[str, nn.Module] = field(default_factory=dict)  # what export() writes
    origin: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    log: Any = None  # status lines
    warn: Any = None  # warnings (each said once, and recorded in the effective config)
    #: the stage's data samplers, checkpoint key -> attribute: a resumed run draws the batches it
    #: would have drawn (a stage with one data stream keeps it as ``sampler``, key "position")
    SAMPLERS: ClassVar[dict[str, str]] = {"position": "sampler"}

    def __post_init__(self) -> None:
        # Identical initial weights on every rank (DDP also broadcasts rank 0's at wrap time).
        torch.manual_seed(int(self.cfg["seed"]))
        self.model_cfg, self.init_folder, self.init_source = resolve_model(self.cfg)
        self.device = self.ctx.device
        self.setup()
        # per-rank randomness from here on (noise, latents, augmentation)
        torch.manual_seed(int(self.cfg["seed"]) * 1000 + 1 + self.ctx.rank)
        np.random.seed(int(self.cfg["seed"]) * 1000 + 1 + self.ctx.rank)

    def setup(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- networks ----------------------------------------------------------------------------
    def has_init(self, name: str) -> bool:
        """Whether init holds a *trained* ``name``: a network that init itself only carried as a
        random initialisation is initialised afresh (and stays "random" on the card), so it
        never passes for trained and a stage starts it with the current code's initialisation."""
        if self.init_folder is None or name not in self.init_folder.networks:
            return False
        recorded = (self.init_folder.extra or {}).get("networks_origin") or {}
        return recorded.get(name) != "random"

    def network(self, name: str, *, required: bool = False, role: str = "init") -> nn.Module:
        """``name`` from init (strictly loaded) or freshly initialised; on the stage's device."""
        from hypernst_cli.pipeline.models import build_network
        from hypernst_cli.weights.checkpoint import load_state_dict_strict

        assert self.model_cfg is not None
        net = build_network(name, self.model_cfg)
        if self.has_init(name):
            load_state_dict_strict(net, self.init_folder.networks[name], f"{self.init_source} [{name}]")
            self.origin.setdefault(name, "init")
        elif required:
            have = ", ".join(sorted(n for n in self.init_folder.networks if self.has_init(n))
                             ) if self.init_folder else "no init"
            raise UsageError(
                f"the '{self.cfg['stage']}' stage needs a trained '{name}' network in init "
                f"(trained there: {have or 'none'})",
                hint=(f"train it first (`hypernst train {TRAINED_BY[name]} init=... -o RUN`) and "
                      f"set init=RUN/final" if name in TRAINED_BY else
                      "set init=MODEL_FOLDER (e.g. the final/ folder of the stage before)"),
            )
        else:
            self.origin.setdefault(name, "random")
        return net.to(self.device)

    def frozen(self, net: nn.Module) -> nn.Module:
        return net.eval().requires_grad_(False)

    def carry(self, *names: str) -> None:
        """Networks exported as they came (from init, or random when init lacks them)."""
        for name in names:
            if name not in self.networks:
                self.networks[name] = self.frozen(self.network(name))

    def log_once(self, key: str, message: str) -> None:
        if key not in self.notes:
            self.notes[key] = message
            self.cfg.setdefault("notes", {})[key] = message
            say = self.warn or self.log
            if say is not None and self.ctx.is_main:
                say(message)

    def lpips(self) -> Any:
        """The LPIPS loss when its backbone is found, else None with ONE warning (recorded)."""
        from hypernst_cli.train.losses import find_lpips

        weight = float(self.cfg["loss"].get("lpips", 0.0))
        if weight <= 0:
            return None
        module, why = find_lpips("alex", self.device)
        if module is None:
            self.cfg["loss"]["lpips"] = 0.0  # the effective config says what was really used
            self.log_once("lpips", f"LPIPS term dropped (weight {weight} -> 0): {why}")
        return module

    # --- data --------------------------------------------------------------------------------
    def data_dir(self) -> Path:
        data = str(self.cfg.get("data") or "")
        if not data:
            raise UsageError("no training data given",
                             hint="set data=DATA (a folder written by `hypernst prepare`)")
        return Path(data)

    def image_set(self, split: str) -> ImageSet:
        assert self.model_cfg is not None
        images = ImageSet(self.data_dir() / split, self.model_cfg.resolution)
        self._warn_if_upscaled(images)
        return images

    def _warn_if_upscaled(self, images: ImageSet) -> None:
        """Data prepared smaller than the model is upscaled on load: blurrier faces and styles
        than the model can draw, which a loss never reports."""
        resolution = self.model_cfg.resolution
        size = prepared_size(self.data_dir(), images)
        if size is not None and size < resolution:
            self.log_once(
                "data_size",
                f"the prepared data {self.data_dir()} is {size} px but the model's resolution is "
                f"{resolution} px, so every image is upscaled; run `hypernst prepare --size "
                f"{resolution}` to prepare it at the model's size")

    def make_sampler(self, n: int, salt: int = 0) -> ResumableSampler:
        return ResumableSampler(n, int(self.cfg["seed"]) + salt, rank=self.ctx.rank, world=self.ctx.world)

    def data_state(self) -> dict[str, Any]:
        return {key: getattr(self, attr).position for key, attr in self.SAMPLERS.items()}

    def load_data_state(self, state: dict[str, Any]) -> None:
        for key, attr in self.SAMPLERS.items():
            getattr(self, attr).position = int(state[key])

    def batch(self, data: Any, sampler: ResumableSampler, flip: bool = True) -> dict[str, Any]:
        """The next batch of ``sampler`` (moving it on), images and masks on the device."""
        b = self.host_batch(data, sampler, flip)
        b["image"] = b["image"].to(self.device)
        b["mask"] = b["mask"].to(self.device)
        return b

    def host_batch(self, data: Any, sampler: ResumableSampler, flip: bool = True) -> dict[str, Any]:
        """The next batch of ``sampler`` (moving it on) on the CPU. Of a copy of the sampler:
        the batch its next call will draw, the sampler unmoved."""
        position = sampler.position
        idx = sampler.next_batch(int(self.cfg["batch_size"]))
        b = make_batch(data, idx, flip_seed=int(self.cfg["seed"]) if flip else None,
                       position=position + self.ctx.rank)
        b["index"] = torch.tensor(idx)
        return b

    @property
    def batch_images(self) -> int:
        return int(self.cfg["batch_size"]) * self.ctx.world

    # --- gradient checkpointing ----------------------------------------------------------------
    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """fn(*args, **kwargs), recomputed in backward instead of stored when
        ``grad_checkpointing`` is on (activation memory for compute)."""
        if self.ctx.grad_checkpointing and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(fn, *args, use_reentrant=False, **kwargs)
        return fn(*args, **kwargs)

    # --- export ------------------------------------------------------------------------------
    def export(self, folder: Path) -> Path:
        from hypernst_cli.pipeline.models import INFERENCE_PARTS
        from hypernst_cli.train.config import dump_toml
        from hypernst_cli.weights.checkpoint import save_model_folder

        assert self.model_cfg is not None
        self.carry(*INFERENCE_PARTS)
        states = {n: {k: v.detach().cpu() for k, v in m.state_dict().items()}
                  for n, m in self.networks.items()}
        origin = {n: self.origin.get(n, "random") for n in self.networks}
        metrics = {"stage": self.cfg["stage"], "steps": self.summary.get("steps"),
                   "final": self.summary.get("final", {}), "networks": origin,
                   "notes": dict(self.notes)}
        extra = {"training_stage": self.cfg["stage"], "networks_origin": origin,
                 "init": self.init_source}
        card = model_card(self.cfg, self.model_cfg, origin, metrics, self.init_source,
                          dump_toml(_recorded_config(self.cfg, self.model_cfg.name)))
        return save_model_folder(folder, states, self.model_cfg.to_dict(), extra, metrics=metrics,
                                 card=card)


def prepared_size(data: Path, images: ImageSet) -> int | None:
    """The size prepared data was aligned at: prepare.json's ``size``, else its first image's."""
    try:
        size = json.loads((Path(data) / "prepare.json").read_text()).get("size")
        if isinstance(size, int) and size > 0:
            return size
    except (OSError, ValueError, AttributeError):
        pass  # an older or hand-made folder: look at an image instead
    try:
        from PIL import Image

        with Image.open(images.samples[0].image) as first:
            return min(first.size)
    except (OSError, IndexError):
        return None


def _recorded_config(cfg: dict[str, Any], model_name: str) -> dict[str, Any]:
    """The config as the card records it: no notes, and the model actually trained (with
    ``init`` the model comes from the init folder and the ``model`` key is not used)."""
    out = copy.deepcopy(cfg)
    out.pop("notes", None)
    out["model"] = model_name
    return out


def model_card(cfg: dict[str, Any], model_cfg: ModelConfig, origin: dict[str, str],
               metrics: dict[str, Any], init_source: str, effective_toml: str) -> str:
    lines = [
        f"# hypernst model: `{model_cfg.name}` config, `{cfg['stage']}` stage",
        "",
        f"Trained with `hypernst train {cfg['stage']}` for {metrics.get('steps')} steps "
        f"(batch {cfg['batch_size']} per process) on the prepared data `{cfg.get('data')}`, "
        f"starting from {('`' + init_source + '`') if init_source else 'scratch'}.",
        "",
        "## Networks",
        "",
    ]
    lines += [f"- `{n}`: {ORIGINS.get(o, o)}" for n, o in sorted(origin.items())]
    final = metrics.get("final") or {}
    if final:
        lines += ["", "## Last logged losses", ""]
        lines += [f"- {k}: {v:.6g}" for k, v in sorted(final.items()) if isinstance(v, float)]
    notes = metrics.get("notes") or {}
    if notes:
        lines += ["", "## Notes", ""] + [f"- {v}" for v in notes.values()]
    lines += [
        "", "## Recipe (effective training config)", "", "```toml", effective_toml.rstrip(), "```",
        "",
        "Use it with `hypernst stylize --weights THIS_FOLDER`, publish it with `hypernst push`.",
        "Weights trained on data with non-commercial terms (FFHQ, AAHQ, UTKFace) inherit them.",
        "",
    ]
    return "\n".join(lines)


def sample_sheet(rows: dict[str, torch.Tensor], columns: int = 4) -> np.ndarray:
    """A labelled contact sheet: one row per entry, up to ``columns`` images of its batch."""
    from hypernst_cli.io.contact_sheet import contact_sheet
    from hypernst_cli.io.tensors import to_uint8

    grid = [[im for im in to_uint8(t[:columns])] for t in rows.values()]
    return contact_sheet(grid, cell=96, row_labels=list(rows))
