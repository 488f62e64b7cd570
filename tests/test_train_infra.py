"""Training infrastructure that does not depend on a stage: configs and exact checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hypernst_cli.errors import UsageError
from hypernst_cli.train.checkpoint import (
    checkpoint_name,
    latest_checkpoint,
    load_training_state,
    prune_checkpoints,
    save_training_state,
)
from hypernst_cli.train.config import STAGES, dump_toml, load_train_config, parse_override


def test_stage_defaults_and_overrides(tmp_path):
    for stage in STAGES:
        cfg = load_train_config(stage)
        assert cfg["stage"] == stage and cfg["steps"] > 0
    cfg = load_train_config("stylize", overrides=["loss.style=5", "steps=20", "model=compact"])
    assert cfg["loss"]["style"] == 5 and cfg["steps"] == 20 and cfg["model"] == "compact"
    assert load_train_config("stylize")["loss"]["style"] == 2.0  # the paper's lambda_2
    with pytest.raises(UsageError, match="unknown training option 'loss.stlye'"):
        load_train_config("stylize", overrides=["loss.stlye=1"])
    with pytest.raises(UsageError, match="expects int"):
        load_train_config("stylize", overrides=["steps=many"])
    f = tmp_path / "my.toml"
    f.write_text('stage = "stylize"\nsteps = 7\n[loss]\nstyle = 1.0\n')
    cfg = load_train_config("stylize", f, ["steps=9"])
    assert cfg["steps"] == 9 and cfg["loss"]["style"] == 1.0
    with pytest.raises(UsageError, match="not 'reconstruct'"):
        load_train_config("reconstruct", f)
    assert parse_override("a.b=x y") == {"a": {"b": "x y"}}


def test_effective_config_roundtrips_through_toml():
    import tomllib

    cfg = load_train_config("generator", overrides=["loss.r1=3.5"])
    assert tomllib.loads(dump_toml(cfg)) == cfg


def _toy(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, opt


def _steps(model, opt, n):
    losses = []
    for _ in range(n):
        x = torch.randn(16, 4)  # draws from the global RNG: resume must restore it
        noise = float(np.random.rand())
        loss = ((model(x) - x.sum(1, keepdim=True) - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_resume_continues_exactly(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    model, opt = _toy()
    _steps(model, opt, 5)
    path = save_training_state(tmp_path / checkpoint_name(5), modules={"m": model},
                               optimizers={"o": opt}, scaler=None, step=5, extra={"pos": 80})
    expected = _steps(model, opt, 5)
    model2, opt2 = _toy(seed=123)  # different init: everything must come from the checkpoint
    torch.manual_seed(999)
    np.random.seed(999)
    step, extra = load_training_state(path, modules={"m": model2}, optimizers={"o": opt2},
                                      scaler=None)
    assert step == 5 and extra == {"pos": 80}
    assert _steps(model2, opt2, 5) == expected


def test_keep_last(tmp_path):
    model, opt = _toy()
    for s in (1, 2, 3, 4):
        save_training_state(tmp_path / checkpoint_name(s), modules={"m": model},
                            optimizers={"o": opt}, scaler=None, step=s, extra={})
    removed = prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in removed] == [checkpoint_name(1), checkpoint_name(2)]
    assert latest_checkpoint(tmp_path).name == checkpoint_name(4)
