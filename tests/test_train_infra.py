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


def test_the_renamed_stylize_layers_option(tmp_path):
    """Stage 2's `layers` is now `stylize_layers` (the model config's hypernet.layers means the
    layers that get offsets): an old config gets a one-line error naming the new key."""
    assert load_train_config("stylize")["stylize_layers"] == "late"
    assert load_train_config("stylize", overrides=["stylize_layers=torgb"])["stylize_layers"] == "torgb"
    old = tmp_path / "old.toml"
    old.write_text('stage = "stylize"\nlayers = "torgb"\n')
    for kwargs in ({"file": old}, {"overrides": ["layers=torgb"]}):
        with pytest.raises(UsageError) as exc:
            load_train_config("stylize", **kwargs)
        message = str(exc.value)
        assert "'layers' is now 'stylize_layers'" in message and "rename it" in message
        assert "\n" not in message
    with pytest.raises(UsageError, match="unknown training option 'layers'"):
        load_train_config("reconstruct", overrides=["layers=late"])  # no such option there


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


class ToyStage:
    """A minimal stage: linear regression on a seeded synthetic set with a resumable sampler."""

    def __new__(cls, cfg, ctx):
        from hypernst_cli.train.data import ResumableSampler
        from hypernst_cli.train.trainer import Stage

        class _Toy(Stage):
            def __post_init__(self):
                torch.manual_seed(cfg["seed"])
                self.net = torch.nn.Linear(3, 1)
                self.modules = {"net": self.net}
                self.optimizers = {"opt": torch.optim.Adam(self.net.parameters(), lr=0.05)}
                g = np.random.default_rng(0)
                self.x = torch.from_numpy(g.normal(size=(40, 3)).astype(np.float32))
                self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]])
                self.sampler = ResumableSampler(40, cfg["seed"])

            def data_state(self):
                return {"position": self.sampler.position}

            def load_data_state(self, state):
                self.sampler.position = state["position"]

            def train_step(self, step):
                idx = self.sampler.next_batch(self.cfg["batch_size"])
                noise = torch.randn(len(idx), 1) * 0.01  # global RNG: must resume too
                loss = ((self.net(self.x[idx]) - self.y[idx] - noise) ** 2).mean()
                self.optimizers["opt"].zero_grad()
                loss.backward()
                self.optimizers["opt"].step()
                return {"loss": loss.item()}

        return _Toy(cfg=cfg, ctx=ctx)


def _toy_cfg(**kw):
    cfg = load_train_config("reconstruct", overrides=["steps=10", "batch_size=4", "log_every=1",
                                                      "checkpoint_every=5", "keep_last=2"])
    cfg.update(kw)
    return cfg


def test_trainer_resume_gives_the_same_losses(tmp_path):
    from hypernst_cli.train.trainer import TrainContext, Trainer, read_metrics

    ctx = TrainContext(device=torch.device("cpu"))
    full = Trainer(ToyStage(_toy_cfg(), ctx), tmp_path / "full", progress=False)
    torch.manual_seed(7)
    full.run()
    reference = [r["loss"] for r in read_metrics(tmp_path / "full")]
    assert len(reference) == 10 and reference[-1] < reference[0]

    part = Trainer(ToyStage(_toy_cfg(), ctx), tmp_path / "part", progress=False)
    torch.manual_seed(7)
    part.run(steps=5)  # "killed" after the step-5 checkpoint
    torch.manual_seed(12345)  # a new process has other random state
    again = Trainer(ToyStage(_toy_cfg(seed=0), ctx), tmp_path / "part", progress=False)
    assert again.resume() and again.step == 5
    again.run()
    resumed = [r["loss"] for r in read_metrics(tmp_path / "part")]
    assert resumed[5:] == pytest.approx(reference[5:], rel=1e-6, abs=1e-7)
    assert (tmp_path / "part" / "config.toml").exists()
    assert len(list((tmp_path / "part" / "checkpoints").iterdir())) <= 2


def test_a_logged_row_is_the_mean_of_the_steps_since_the_last_one(tmp_path):
    from hypernst_cli.train.trainer import TrainContext, Trainer, read_metrics

    ctx = TrainContext(device=torch.device("cpu"))
    torch.manual_seed(7)
    Trainer(ToyStage(_toy_cfg(), ctx), tmp_path / "every", progress=False).run()
    per_step = [r["loss"] for r in read_metrics(tmp_path / "every")]
    torch.manual_seed(7)
    returned = Trainer(ToyStage(_toy_cfg(log_every=4), ctx), tmp_path / "four",
                       progress=False).run()
    rows = read_metrics(tmp_path / "four")
    assert [r["step"] for r in rows] == [4, 8, 10]  # and the last step, whatever the period
    means = [np.mean(per_step[0:4]), np.mean(per_step[4:8]), np.mean(per_step[8:10])]
    assert [r["loss"] for r in rows] == pytest.approx(means, rel=1e-5)
    # the run returns (and the export records) the final row, not the last step alone
    assert returned["loss"] == pytest.approx(means[-1], rel=1e-5)


def test_a_run_stopped_early_at_a_checkpoint_keeps_its_last_losses(tmp_path):
    """Resumed with ``steps`` lowered to the checkpoint it stopped at, a run trains nothing; what
    it returns (the export's recorded losses) is the last logged row, not nothing."""
    from hypernst_cli.train.trainer import TrainContext, Trainer, read_metrics

    ctx = TrainContext(device=torch.device("cpu"))
    part = Trainer(ToyStage(_toy_cfg(), ctx), tmp_path / "part", progress=False)
    part.run(steps=5)
    again = Trainer(ToyStage(_toy_cfg(steps=5), ctx), tmp_path / "part", progress=False)
    assert again.resume() and again.step == 5
    last = again.run()
    assert last["loss"] == read_metrics(tmp_path / "part")[-1]["loss"] and "step" not in last


def test_max_minutes_ends_the_run_with_a_checkpoint_and_its_last_losses(tmp_path, monkeypatch):
    """A time budget stops the loop like its last step: the run saves a checkpoint at the step
    it reached and logs that step's losses, so a run sized in minutes leaves a model behind."""
    from hypernst_cli.train import trainer as trainer_mod
    from hypernst_cli.train.trainer import TrainContext, Trainer, read_metrics

    clock = iter(range(0, 10_000, 20))  # every reading of the clock is 20 s later
    monkeypatch.setattr(trainer_mod.time, "perf_counter", lambda: float(next(clock)))
    ctx = TrainContext(device=torch.device("cpu"))
    run = Trainer(ToyStage(_toy_cfg(log_every=4, max_minutes=1.5), ctx), tmp_path / "run",
                  progress=False)
    last = run.run()
    assert 0 < run.step < 10  # stopped by the budget, not by `steps`
    rows = read_metrics(tmp_path / "run")
    assert rows[-1]["step"] == run.step and last["loss"] == pytest.approx(rows[-1]["loss"])
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == checkpoint_name(run.step)


def test_stages_checkpoint_their_sampler_positions_under_the_old_keys(tiny_model_dir, tmp_path):
    """ModelStage.data_state / load_data_state (one implementation for every stage): each
    sampler's position under the key checkpoints have always used, restored into a new stage."""
    import json

    from hypernst_cli.train.run import build_stage
    from hypernst_cli.train.trainer import TrainContext
    from synthetic_faces import write_prepared

    data = write_prepared(tmp_path / "data", n_content=3, n_style=2)
    ctx = TrainContext(device=torch.device("cpu"))
    options = {"model": "tiny", "data": str(data), "init": str(tiny_model_dir), "steps": 1,
               "batch_size": 2, "sample_every": 0, "checkpoint_every": 0}
    keys = {"reconstruct": {"position": "sampler"},
            "stylize": {"content": "content_sampler", "style": "style_sampler"}}
    for stage_name, samplers in keys.items():
        cfg = load_train_config(stage_name, overrides=[f"{k}={json.dumps(v)}"
                                                       for k, v in options.items()])
        stage = build_stage(cfg, ctx)
        for attr in samplers.values():
            getattr(stage, attr).next_batch(2)
        state = stage.data_state()
        assert state == {key: getattr(stage, attr).position for key, attr in samplers.items()}
        assert all(v > 0 for v in state.values())
        fresh = build_stage(cfg, ctx)
        fresh.load_data_state(json.loads(json.dumps(state)))  # as the checkpoint stores it
        assert fresh.data_state() == state
