"""``hypernst push``: publish a trained model folder to the Hugging Face Hub with a model card."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypernst_cli.errors import WeightsError
from hypernst_cli.weights.checkpoint import (
    CARD_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    ModelFolder,
    load_model_folder,
)

UPLOADED = [CONFIG_FILE, MODEL_FILE, CARD_FILE, METRICS_FILE]

NON_COMMERCIAL_NOTE = (
    "Models trained on data released for non-commercial use (FFHQ is CC BY-NC-SA 4.0; many "
    "art-portrait sets carry similar or unclear terms) inherit those terms: check the licenses of "
    "every training set before any commercial use."
)


class PublishError(WeightsError):
    """Publishing to the Hub failed (exit 3)."""


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    revision: str
    url: str
    card_written: bool


def _section(title: str, body: str) -> str:
    return f"## {title}\n\n{body.strip()}\n"


def _table(rows: dict[str, Any]) -> str:
    lines = ["| key | value |", "| --- | --- |"]
    for key, value in rows.items():
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        lines.append(f"| {key} | {text.replace('|', '/')} |")
    return "\n".join(lines)


def _flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_metrics(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def make_model_card(model: ModelFolder, *, repo_id: str, license_id: str | None = None) -> str:
    """A README.md for the Hub: config, training recipe, metrics, license and usage."""
    config = model.config
    extra = model.extra
    license_id = license_id or str(extra.get("license") or "other")
    name = config.get("name") or repo_id.split("/")[-1]
    resolution = (config.get("generator") or {}).get("resolution")
    tags = ["hypernst", "style-transfer", "stylegan2", "hypernetwork", "portrait"]

    front = ["---", f"license: {license_id}", "library_name: hypernst", "tags:"]
    front += [f"- {t}" for t in tags]
    front.append("---")

    parts = ["\n".join(front), f"# {repo_id.split('/')[-1]}\n"]
    summary = (
        f"HyperNST model (config `{name}`"
        + (f", {resolution} px" if resolution else "")
        + "): a hyper-network predicts per-channel weight offsets for a StyleGAN2 generator, "
        "conditioned on the content image and on ALADIN style codes averaged per facial region."
    )
    parts.append(summary + "\n")
    networks = ", ".join(f"`{n}` ({len(t)} tensors)" for n, t in sorted(model.networks.items()))
    parts.append(_section("Files", f"`{MODEL_FILE}` holds the networks {networks}; "
                          f"`{CONFIG_FILE}` its config" + (
                              f"; `{METRICS_FILE}` the evaluation numbers." if model.metrics else ".")))

    parts.append(_section("Config", "```json\n" + json.dumps(config, indent=2, sort_keys=True) + "\n```"))

    recipe = extra.get("training") or extra.get("recipe")
    if recipe:
        body = _table(recipe) if isinstance(recipe, dict) else str(recipe)
    else:
        body = "Not recorded in the checkpoint."
    parts.append(_section("Training recipe", body))

    if model.metrics:
        parts.append(_section("Metrics", _table(_flat_metrics(model.metrics))))
    else:
        parts.append(_section("Metrics", "No metrics.json was published with this model."))

    parts.append(_section("License", f"`{license_id}`.\n\n{NON_COMMERCIAL_NOTE}"))
    local = repo_id.split("/")[-1]
    usage = (
        "```bash\n"
        f"hf download {repo_id} --local-dir {local}\n"
        f"hypernst stylize face.jpg style.png -o out.png --weights {local}\n"
        "```"
    )
    parts.append(_section("Usage", usage))
    return "\n".join(parts)


def push_model_folder(
    directory: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    license_id: str | None = None,
    api: Any = None,
) -> PushResult:
    """Create the repo (if needed) and upload config, weights, metrics and the model card."""
    from hypernst_cli.io import atomic_write_text

    folder = Path(directory)
    if not folder.is_dir():
        raise PublishError(f"{folder}: not a model folder", hint="pass the folder `hypernst train` wrote")
    model = load_model_folder(folder)  # refuses anything that is not a valid model folder

    card_written = False
    if not (folder / CARD_FILE).is_file():
        atomic_write_text(folder / CARD_FILE, make_model_card(model, repo_id=repo_id, license_id=license_id))
        card_written = True

    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=os.environ.get("HF_TOKEN") or None)
    branch = revision or "main"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            revision=branch,
            allow_patterns=[p for p in UPLOADED if (folder / p).is_file()],
            commit_message=f"Upload HyperNST model ({model.config.get('name', folder.name)})",
        )
    except Exception as exc:  # noqa: BLE001 - one line for the user
        from hypernst_cli.weights.download import _http_status

        status = _http_status(exc)
        if status in (401, 403):
            raise PublishError(
                f"push to {repo_id} refused ({status})",
                hint="set HF_TOKEN to a token with write access",
            ) from exc
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise PublishError(f"push to {repo_id} failed ({detail})") from exc
    url = getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}/tree/{branch}"
    return PushResult(repo_id, branch, str(url), card_written)
