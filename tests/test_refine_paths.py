"""Training and inference run one refinement loop: the same offsets for the same inputs and weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from hypernst_cli.pipeline.core import encode, stylize_tensors
from hypernst_cli.train.config import load_train_config
from hypernst_cli.train.data import make_batch
from hypernst_cli.train.trainer import TrainContext
from synthetic_faces import write_prepared

CPU = TrainContext(device=torch.device("cpu"))


@pytest.fixture(scope="module")
def global_code_model(tmp_path_factory) -> Path:
    """A `tiny` model whose hyper-network reads A(s) (Eq. 2), with non-zero random heads."""
    from hypernst_cli.configs import get_config
    from hypernst_cli.pipeline.models import INFERENCE_PARTS, init_networks, save_networks

    tiny = get_config("tiny")
    cfg = tiny.replace(hypernet=dataclasses.replace(tiny.hypernet, global_code=True))
    networks = init_networks(cfg, INFERENCE_PARTS, seed=0)
    with torch.no_grad():
        for name, param in networks["hypernet"].named_parameters():
            if not param.any():
                param.normal_(0.0, 0.05 if name.endswith("weight") else 0.01)
    folder = tmp_path_factory.mktemp("models") / "tiny-global"
    save_networks(folder, cfg, networks, note="random weights for tests")
    return folder


@pytest.mark.parametrize("stage_name", ["reconstruct", "stylize"])
def test_training_and_inference_give_the_same_offsets(global_code_model, tmp_path, stage_name):
    from hypernst_cli.train.run import build_stage

    data = write_prepared(tmp_path / "data", n_content=3, n_style=2)
    options = {"model": "tiny", "data": str(data), "init": str(global_code_model), "steps": 1,
               "batch_size": 2, "sample_every": 0, "checkpoint_every": 0, "iterations": 3}
    if stage_name == "stylize":
        options["loss.style"] = 0.0
    cfg = load_train_config(stage_name, overrides=[f"{k}={json.dumps(v)}" for k, v in options.items()])
    torch.manual_seed(0)
    stage = build_stage(cfg, CPU)
    data_set = stage.data if stage_name == "reconstruct" else stage.content
    batch = make_batch(data_set, [0, 1])
    x, mask = batch["image"], batch["mask"]
    table = stage.all_codes if stage_name == "reconstruct" else stage.style_codes
    codes = table[[1, 0]]  # someone else's codes, A(s) included
    assert codes.shape[1] == 4
    latent, initial = stage.start(x)
    losses = []
    trained = stage.refine(x, mask, codes, latent, initial,
                           lambda y, t: losses.append(t) or (y - x).abs().mean())
    assert losses == [0, 1, 2]
    assert any(p.grad is not None for p in stage.H.parameters())  # it did backpropagate
    with torch.no_grad():
        served = stylize_tensors(stage.G, stage.H, stage.E, x, mask, codes, iterations=3,
                                 latent=encode(stage.E, stage.G, x))
    assert sum(o is not None for o in trained.offsets) > 0
    for a, b in zip(trained.offsets, served.offsets):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(trained.images[-1], served.images, rtol=1e-5, atol=1e-5)
