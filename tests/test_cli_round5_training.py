"""Bad and unusual input to the training, evaluation and weights commands: one-line errors with
their exit codes, no lost work on Ctrl-C or resume, no inputs taken for outputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hypernst_cli.errors import HypernstError, UsageError, WeightsIntegrityError
from hypernst_cli.train.checkpoint import checkpoint_name, load_training_state, save_training_state
from hypernst_cli.train.config import load_train_config
from hypernst_cli.train.trainer import Stage, TrainContext, Trainer, read_metrics

CPU = TrainContext(device=torch.device("cpu"))


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


class LineStage(Stage):
    """A stage of one linear layer on fixed data: checkpoints and resumes like the real ones.
    ``on_step(stage, step)`` runs inside every step (to interrupt it)."""

    on_step = None

    def __post_init__(self) -> None:
        torch.manual_seed(0)
        self.net = torch.nn.Linear(3, 1)
        self.modules = {"net": self.net}
        self.optimizers = {"opt": torch.optim.SGD(self.net.parameters(), lr=0.1)}
        self.x = torch.linspace(-1, 1, 24).reshape(8, 3)
        self.steps_run = 0

    def train_step(self, step: int) -> dict[str, float]:
        if self.on_step is not None:
            self.on_step(step)
        loss = ((self.net(self.x) - 1.0) ** 2).mean()
        self.optimizers["opt"].zero_grad()
        loss.backward()
        self.optimizers["opt"].step()
        self.steps_run += 1
        return {"loss": float(loss.detach())}


def line_cfg(**options: object) -> dict:
    base = {"steps": 6, "batch_size": 1, "log_every": 1, "sample_every": 0,
            "checkpoint_every": 2, "keep_last": 0}
    base.update(options)
    return load_train_config("reconstruct", overrides=[f"{k}={json.dumps(v)}"
                                                       for k, v in base.items()])


# --- train: options -------------------------------------------------------------------------


@pytest.mark.parametrize("option, says", [
    ("seed=-1", "'seed' must be an integer from 0"),          # was an internal error at step 0
    ("seed=4294967296", "'seed' must be an integer from 0"),
    ("iterations=0", "'iterations' must be an integer >= 1"),  # was an internal error
    ("max_minutes=-1", "'max_minutes' must be"),  # stopped after the first step
    ("max_minutes=nan", "'max_minutes' must be"),  # no limit at all
    ("amp=fp8", "'amp' must be one of none, bf16, fp16"),  # silently trained in fp32
    ("keep_last=-1", "'keep_last' must be an integer >= 0"),
    ("checkpoint_every=-5", "'checkpoint_every' must be an integer >= 0"),
    ("loss.r1_every=-1", "'loss.r1_every' must be an integer >= 0"),
])
def test_train_refuses_options_no_run_can_use(run_cli, option, says):
    r = run_cli("train", "stylize", option, "--show-config")
    assert r.exit_code == 2
    assert says in one_line_error(r.stderr)


def test_train_still_takes_the_usual_values():
    cfg = load_train_config("stylize", overrides=["seed=12", "iterations=1", "max_minutes=0.5",
                                                  "amp=bf16", "keep_last=0", "checkpoint_every=0"])
    assert cfg["seed"] == 12 and cfg["max_minutes"] == 0.5 and cfg["amp"] == "bf16"


# --- train: resume --------------------------------------------------------------------------


def test_resume_refuses_a_checkpoint_of_another_stage(tmp_path):
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    path = save_training_state(tmp_path / checkpoint_name(2), modules={"net": net},
                               optimizers={"opt": opt}, scaler=None, step=2,
                               extra={"stage": "reconstruct"})
    with pytest.raises(UsageError, match="a checkpoint of the 'reconstruct' stage, not 'stylize'"):
        load_training_state(path, modules={"net": net}, optimizers={"opt": opt}, scaler=None,
                            stage="stylize")


def test_resume_refuses_networks_of_another_model_in_one_line(tmp_path):
    small = torch.nn.Linear(3, 1)
    path = save_training_state(tmp_path / checkpoint_name(2), modules={"net": small},
                               optimizers={}, scaler=None, step=2, extra={"stage": "stylize"})
    big = torch.nn.Linear(5, 1)  # another model config: other shapes (was a RuntimeError, exit 70)
    with pytest.raises(UsageError, match="'net' network in the checkpoint does not fit") as err:
        load_training_state(path, modules={"net": big}, optimizers={}, scaler=None,
                            stage="stylize")
    assert "\n" not in err.value.one_line()
    # a network the checkpoint does not hold at all (the stylize stage's discriminators)
    with pytest.raises(UsageError, match="no state for 'disc'"):
        load_training_state(path, modules={"net": small, "disc": torch.nn.Linear(2, 1)},
                            optimizers={}, scaler=None, stage="stylize")


def test_train_cli_resume_as_another_stage_is_one_line(run_cli, tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    net = torch.nn.Linear(3, 1)
    save_training_state(run / "checkpoints" / checkpoint_name(2), modules={"net": net},
                        optimizers={}, scaler=None, step=2, extra={"stage": "reconstruct"})
    data = tmp_path / "data"
    for split in ("content", "style"):
        (data / split).mkdir(parents=True)
        from hypernst_cli.io import save_image

        save_image(np.full((64, 64, 3), 128, np.uint8), data / split / "a.png")
    r = run_cli("-q", "train", "stylize", f"init={tiny_model_dir}", f"data={data}", "steps=3",
                "batch_size=1", "loss.lpips=0", "--resume", "-o", run)
    assert r.exit_code == 2
    assert "a checkpoint of the 'reconstruct' stage" in one_line_error(r.stderr)


def test_ctrl_c_mid_step_keeps_the_finished_steps(tmp_path):
    stage = LineStage(cfg=line_cfg(checkpoint_every=100), ctx=CPU)

    def interrupt(step: int) -> None:
        if step == 2:  # Ctrl-C arrives while the third step runs
            os.kill(os.getpid(), signal.SIGINT)

    stage.on_step = interrupt
    trainer = Trainer(stage, tmp_path / "run", progress=False)
    from hypernst_cli.train.trainer import TrainingInterrupted

    with pytest.raises(KeyboardInterrupt) as stop:
        trainer.run()
    assert isinstance(stop.value, TrainingInterrupted) and stop.value.step == 3
    # the step under way finished and was checkpointed (no checkpoint was due before step 100)
    assert (tmp_path / "run" / "checkpoints" / checkpoint_name(3)).is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler given back

    again = Trainer(LineStage(cfg=line_cfg(checkpoint_every=100), ctx=CPU), tmp_path / "run",
                    progress=False)
    assert again.resume() and again.step == 3
    again.run()
    assert again.stage.steps_run == 3
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [1, 2, 3, 4, 5, 6]


def test_resume_forgets_rows_logged_after_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    Trainer(LineStage(cfg=line_cfg(), ctx=CPU), run, progress=False).run(steps=5)
    # "killed" after step 5's row, before its checkpoint: the newest checkpoint is step 4
    (run / "checkpoints" / checkpoint_name(5)).unlink()
    again = Trainer(LineStage(cfg=line_cfg(), ctx=CPU), run, progress=False)
    assert again.resume() and again.step == 4
    again.run()
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4, 5, 6]  # step 5 once


def test_a_corrupt_newest_checkpoint_names_the_one_before(tmp_path):
    run = tmp_path / "run"
    Trainer(LineStage(cfg=line_cfg(), ctx=CPU), run, progress=False).run(steps=4)
    newest = run / "checkpoints" / checkpoint_name(4)
    newest.write_bytes(newest.read_bytes()[:500])  # truncated by a full disk or a bad copy
    again = Trainer(LineStage(cfg=line_cfg(), ctx=CPU), run, progress=False)
    with pytest.raises(WeightsIntegrityError) as err:
        again.resume()
    assert checkpoint_name(2) in err.value.one_line()


def test_an_unwritable_checkpoint_folder_fails_before_any_step(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").write_text("a file where the folder should be")
    stage = LineStage(cfg=line_cfg(checkpoint_every=100), ctx=CPU)
    with pytest.raises(HypernstError) as err:
        Trainer(stage, run, progress=False).run()
    assert err.value.exit_code == 74
    assert stage.steps_run == 0  # nothing trained only to be lost


# --- prepare ------------------------------------------------------------------------------------


def test_prepare_refuses_an_output_that_holds_the_inputs(run_cli, portraits, tmp_path):
    data = tmp_path / "data"
    for split, src in (("content", portraits / "faces" / "face-1.png"),
                       ("style", portraits / "styles" / "neon.png")):
        (data / split).mkdir(parents=True)
        shutil.copy(src, data / split / src.name)
    before = (data / "content" / "face-1.png").read_bytes()
    r = run_cli("-q", "prepare", data / "content", data / "style", "-o", data,
                "--config", "tiny", "--backend", "dlib")
    # the photo was "already prepared" (its own name in DATA/content): skipped, exit 0, unaligned
    assert r.exit_code == 2
    assert "is inside it" in one_line_error(r.stderr)
    assert (data / "content" / "face-1.png").read_bytes() == before
    assert not (data / "prepare.json").exists()


def test_prepare_checks_its_weights_before_preparing_anything(run_cli, portraits, tmp_path):
    """`prepare -w nosuch` aligned and parsed every image, then failed on the weights."""
    r = run_cli("-q", "prepare", portraits / "faces", portraits / "styles", "-o", tmp_path / "d",
                "--config", "tiny", "--backend", "dlib", "-w", tmp_path / "nosuch")
    assert r.exit_code != 0 and "nosuch" in one_line_error(r.stderr)
    assert not (tmp_path / "d" / "content").exists()


# --- evaluate -----------------------------------------------------------------------------------


def test_evaluate_refuses_an_input_folder_as_report_folder(run_cli, portraits, tmp_path,
                                                          tiny_model_dir):
    content, style = tmp_path / "content", tmp_path / "style"
    content.mkdir()
    style.mkdir()
    shutil.copy(portraits / "faces" / "face-1.png", content)
    shutil.copy(portraits / "styles" / "neon.png", style)
    r = run_cli("-q", "evaluate", "--content", content, "--style", style, "-w", tiny_model_dir,
                "--no-region-colour", "-o", content)
    assert r.exit_code == 2
    assert "also an input folder" in one_line_error(r.stderr)
    assert sorted(p.name for p in content.iterdir()) == ["face-1.png"]  # no report among them


def test_analogy_plan_draws_only_the_items_it_keeps():
    from hypernst_cli.eval.analogies import eval_seed, plan_items
    from hypernst_cli.styles.families import draw_style

    # the same items as drawing every draw x pair and sampling them
    pairs = [(a, b) for a in range(3) for b in range(3) if a != b]
    everything = [(a, b, draw_style("duotone", eval_seed(0, "duotone", d)))
                  for d in range(4) for a, b in pairs]
    import random

    keep = sorted(random.Random("0-duotone").sample(range(len(everything)), 5))
    planned = plan_items(3, ["duotone"], draws=4, limit=5)
    assert [(i.exemplar_face, i.content_face, i.draw) for i in planned] == \
        [everything[i] for i in keep]

    def too_slow(signum, frame):
        raise TimeoutError("planning drew every draw, not the kept ones")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, 10.0)
    try:
        start = time.perf_counter()
        items = plan_items(3, ["duotone"], draws=10**8, limit=2)  # hung before
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(items) == 2 and time.perf_counter() - start < 5


# --- convert ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 18, 64), (1, 1, 1, 64)])
def test_convert_refuses_a_direction_shape_no_edit_takes(run_cli, tmp_path, shape):
    src = tmp_path / "d.pt"
    torch.save(torch.randn(*shape), src)
    r = run_cli("-q", "convert", "directions", src, "-o", tmp_path / "d.safetensors")
    assert r.exit_code == 3
    assert f"has shape {list(shape)}" in one_line_error(r.stderr)
    assert not (tmp_path / "d.safetensors").exists()


def test_convert_records_a_per_layer_direction_as_w_plus(run_cli, tmp_path):
    from hypernst_cli.weights.checkpoint import load_model_folder

    src = tmp_path / "layers.pt"
    torch.save(torch.randn(10, 64), src)
    r = run_cli("-q", "convert", "directions", src, "-o", tmp_path / "layers.safetensors")
    assert r.exit_code == 0, r.stderr
    extra = load_model_folder(tmp_path / "layers.safetensors").extra
    assert extra["directions"]["layers"]["space"] == "w+"


def test_convert_a_folder_says_so(run_cli, tmp_path):
    r = run_cli("-q", "convert", "directions", tmp_path, "-o", tmp_path / "x.safetensors")
    assert r.exit_code == 2
    assert "a folder, not a file" in one_line_error(r.stderr)


# --- evaluate -o, convert, download, training data size, directions fit ------------------------


@pytest.mark.parametrize("name", ["x.png", "x.tif"])
def test_evaluate_refuses_an_image_name_as_report_folder(run_cli, tmp_path, name):
    """`evaluate -o x.png` made a folder named x.png; any suffix the image loader reads counts."""
    r = run_cli("-q", "evaluate", "--content", tmp_path, "--style", tmp_path,
                "-o", tmp_path / name)
    assert r.exit_code == 2
    assert "evaluate writes a report folder" in one_line_error(r.stderr)
    assert not (tmp_path / name).exists()


def test_convert_says_a_text_file_is_not_a_checkpoint(run_cli, tmp_path):
    """A text file was "not a readable PyTorch checkpoint (101)": torch's opcode number."""
    text = tmp_path / "notes.pt"
    text.write_text("these are notes, not weights\n")
    r = run_cli("convert", "state-dict", text, "-o", tmp_path / "out")
    assert r.exit_code == 3
    line = one_line_error(r.stderr)
    assert "not a PyTorch checkpoint (neither a zip archive nor a pickle)" in line
    assert "(101)" not in line


def test_download_without_a_network_says_so_once(run_cli, tmp_path, monkeypatch):
    """Offline, `download --config paper` printed one "[Errno -2] Name or service not known"
    line per file."""
    import socket
    import urllib.error
    import urllib.request

    def no_dns(*args, **kwargs):  # what urlopen raises when the resolver cannot look up a host
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", no_dns)
    r = run_cli("download", "lpips-alexnet-backbone", "lpips-vgg16-backbone", "sifid-inception")
    assert r.exit_code == 3
    line = one_line_error(r.stderr)
    assert "no network connection" in line and "3 file(s)" in line
    assert "machine with a network" in line and "Errno" not in line
    # one file: its own line, saying the same
    r = run_cli("download", "lpips-alexnet-backbone")
    assert r.exit_code == 3
    line = one_line_error(r.stderr)
    assert "no network connection" in line and "download.pytorch.org" in line
    assert "Errno" not in line


def test_training_on_data_smaller_than_the_model_warns_once(tmp_path, tiny_model_dir):
    """Data prepared at 32 px for the 64 px tiny model was upscaled without a word."""
    from PIL import Image

    from hypernst_cli.train.run import build_stage

    data = tmp_path / "data"
    for split in ("content", "style"):
        (data / split).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), (40 * i, 90, 160)).save(data / split / f"im{i}.png")
    (data / "prepare.json").write_text(json.dumps({"size": 32}))
    said: list[str] = []
    cfg = load_train_config("reconstruct", overrides=[
        f"init={json.dumps(str(tiny_model_dir))}", f"data={json.dumps(str(data))}",
        "steps=1", "batch_size=1"])
    build_stage(cfg, CPU, log=lambda _m: None, warn=said.append)
    sized = [m for m in said if "32 px" in m]
    assert len(sized) == 1, said
    assert "64 px" in sized[0] and "hypernst prepare --size 64" in sized[0]
    assert "\n" not in sized[0]


def test_directions_fit_refuses_a_label_with_too_few_photos():
    """`directions fit` on two faces wrote directions with held-out accuracy 0."""
    from hypernst_cli.pipeline import directions_fit as df

    torch.manual_seed(0)
    encoded = df.EncodedSet(samples=[df.Sample(path=Path(f"f{i}.png"), wplus=torch.randn(2, 8),
                                               labels={"smile": float(i)}) for i in range(4)])
    fits, failures = df.fit_attributes(encoded, ["smile"], kind="regression")
    assert fits == {} and "at least 10" in failures["smile"]
    fits, failures = df.fit_attributes(encoded, ["smile"], kind="regression", min_photos=2)
    assert set(fits) == {"smile"} and failures == {}
