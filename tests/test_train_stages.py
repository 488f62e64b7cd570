"""The training stages on real prepared images (tiny config, CPU): run, export, resume, freeze."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hypernst_cli.pipeline.models import INFERENCE_PARTS, load_models
from hypernst_cli.train.config import load_train_config
from hypernst_cli.train.trainer import TrainContext, read_metrics

FACES = ["astronaut.png", "face-1.png", "face-2.png", "face-3.png"]
#: the last style shows no face dlib finds (a neon pattern)
STYLES = ["poster-portrait.png", "painted-face-2.png", "duotone-face-3.png", "neon.png"]
CPU = TrainContext(device=torch.device("cpu"))
REPO = Path(__file__).resolve().parent.parent


def run_cli_args(*args: str) -> int:
    from hypernst_cli.cli.app import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return int(exc.value.code or 0)


@pytest.fixture(scope="session")
def prepared(portraits, tmp_path_factory) -> Path:
    """4 faces + 4 styles (one without a detectable face) through `hypernst prepare`."""
    root = tmp_path_factory.mktemp("prepare")
    (root / "content").mkdir()
    (root / "style").mkdir()
    for name in FACES:
        shutil.copy(portraits / "faces" / name, root / "content" / name)
    for name in STYLES:
        shutil.copy(portraits / "styles" / name, root / "style" / name)
    data = root / "data"
    code = run_cli_args("-q", "prepare", root / "content", root / "style", "-o", data,
                        "--size", "64", "--backend", "dlib")
    assert code == 0
    return data


def cfg_for(stage: str, data: Path, **options: object) -> dict:
    base = {"model": "tiny", "data": str(data), "steps": 20, "batch_size": 2, "log_every": 1,
            "sample_every": 0, "checkpoint_every": 0}
    base.update(options)
    overrides = [f"{k}={json.dumps(v)}" for k, v in base.items()]
    return load_train_config(stage, overrides=overrides)


def train(stage: str, data: Path, run_dir: Path, **options: object) -> Path:
    from hypernst_cli.train.run import run_training

    return run_training(cfg_for(stage, data, **options), run_dir, progress=False, ctx=CPU)


def test_prepare_report_and_resume(prepared, run_cli, tmp_path):
    rows = [json.loads(line) for line in (prepared / "report.jsonl").read_text().splitlines()]
    by_name = {r["name"]: r for r in rows}
    assert all(by_name[Path(n).stem]["status"] == "ok" for n in FACES)
    faceless = by_name["neon"]
    assert faceless["status"] == "kept_no_face" and not faceless["mask"]
    assert (prepared / "style" / "neon.png").exists()
    assert not (prepared / "style" / "neon.mask.png").exists()
    mask = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(
        prepared / "content" / "astronaut.mask.png"))
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 1, 2} and (mask == 1).any()

    # resumable: a second run over a copy skips everything; an unreadable content file is rejected
    data = tmp_path / "data"
    shutil.copytree(prepared, data)
    src = Path(json.loads((prepared / "prepare.json").read_text())["content_dir"])
    content = tmp_path / "content"
    shutil.copytree(src, content)
    (content / "broken.png").write_bytes(b"not an image")
    style = Path(json.loads((prepared / "prepare.json").read_text())["style_dir"])
    res = run_cli("-q", "prepare", content, style, "-o", data, "--size", "64", "--backend", "dlib")
    assert res.exit_code == 1, res.stderr
    rows = [json.loads(line) for line in (data / "report.jsonl").read_text().splitlines()]
    broken = [r for r in rows if r["name"] == "broken"]
    assert broken and broken[0]["status"] == "rejected" and broken[0]["reason"]
    assert all(r["skipped"] for r in rows if r["status"] != "rejected")


def _finite_losses(run_dir: Path) -> list[dict]:
    rows = read_metrics(run_dir)
    assert len(rows) == 20
    for row in rows:
        for key, value in row.items():
            assert math.isfinite(value), (run_dir.name, key, value)
    return rows


def test_every_stage_runs_and_exports_a_loadable_model(prepared, tmp_path, run_cli,
                                                       isolated_cache):
    """generator (scratch) -> encoder -> aladin -> reconstruct -> stylize, 20 steps each."""
    runs = tmp_path / "runs"
    gen = train("generator", prepared, runs / "gen", **{"augment.kind": "ada", "loss.r1_every": 4,
                                                         "loss.path_length": 2.0})
    enc = train("encoder", prepared, runs / "enc", init=str(gen), progressive_every=4,
                **{"loss.latent_disc": 0.1})
    # stage 1 needs a trained ALADIN: the aladin stage fine-tunes one and carries the rest
    ala = train("aladin", prepared, runs / "ala", init=str(enc), batch_size=4, warmup=0)
    rec = train("reconstruct", prepared, runs / "rec", init=str(ala))
    sty = train("stylize", prepared, runs / "sty", init=str(rec), **{"loss.r1_every": 4})

    for run, final in (("gen", gen), ("enc", enc), ("rec", rec), ("sty", sty)):
        assert final == runs / run / "final"
        rows = _finite_losses(runs / run)
        models = load_models(str(final), None, torch.device("cpu"), INFERENCE_PARTS)
        assert set(models.networks) == set(INFERENCE_PARTS)
        meta = json.loads((final / "metrics.json").read_text())
        assert meta["steps"] == 20 and meta["final"]
        assert "## Recipe" in (final / "README.md").read_text()
        assert len(list((runs / run / "checkpoints").iterdir())) == 1
        assert list((runs / run / "samples").glob("*.png"))
    origins = {run: json.loads((runs / run / "final" / "metrics.json").read_text())["networks"]
               for run in ("gen", "enc", "rec", "sty")}
    assert origins["gen"]["generator"] == "trained" and origins["gen"]["encoder"] == "random"
    # networks that were only ever random stay "random" from stage to stage
    assert origins["enc"] == {"generator": "init", "encoder": "trained", "aladin": "random",
                              "hypernet": "random"}
    assert origins["rec"]["hypernet"] == "trained" and origins["rec"]["encoder"] == "init"
    assert origins["sty"]["patch_disc"] == "trained" and origins["sty"]["discriminator"] == "trained"
    # stage exports carry forward what they got: stage 1's generator is the encoder run's
    a = load_models(str(enc), None, torch.device("cpu"), ["generator"]).fingerprints["generator"]
    b = load_models(str(rec), None, torch.device("cpu"), ["generator"]).fingerprints["generator"]
    assert a == b
    gen_rows = read_metrics(runs / "gen")
    assert any("path_length" in r for r in gen_rows) and any("r1" in r for r in gen_rows)
    assert "ada_p" in gen_rows[-1]
    sty_rows = read_metrics(runs / "sty")
    assert all(r["patch_pairs"] > 0 for r in sty_rows)
    # LPIPS: no backbone here, so the term is dropped, said once and recorded
    import tomllib

    eff = tomllib.loads((runs / "rec" / "config.toml").read_text())
    if "notes" in eff:
        assert eff["loss"]["lpips"] == 0.0 and "LPIPS" in eff["notes"]["lpips"]
        assert not any(k.startswith("lpips") for k in rows[0])
    # the stage-2 export is what `hypernst stylize --weights` runs on
    content = sorted(p for p in (prepared / "content").glob("*.png") if not p.name.endswith(".mask.png"))[0]
    style = sorted(p for p in (prepared / "style").glob("*.png") if not p.name.endswith(".mask.png"))[0]
    r = run_cli("--device", "cpu", "stylize", content, style, "-o", tmp_path / "out.png",
                "--weights", sty)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "out.png").exists()


@pytest.fixture
def tiny_data(prepared, tmp_path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(prepared, data)
    return data


@pytest.mark.parametrize("stage,options", [
    ("stylize", {"loss.r1_every": 2}),
    ("generator", {"augment.kind": "ada", "loss.r1_every": 2, "loss.path_length": 2.0,
                   "loss.path_length_every": 2}),
])
def test_resume_gives_the_same_losses(stage, options, tiny_data, tiny_model_dir, tmp_path):
    opts = dict(init=str(tiny_model_dir), steps=6, checkpoint_every=3, **options)
    train(stage, tiny_data, tmp_path / "full", **opts)
    reference = read_metrics(tmp_path / "full")

    from hypernst_cli.train.run import run_training

    cfg = cfg_for(stage, tiny_data, **{**opts, "steps": 3})
    run_training(cfg, tmp_path / "part", progress=False, ctx=CPU)  # stops after step 3
    torch.manual_seed(999)  # a new process: other random state
    np.random.seed(999)
    run_training(cfg_for(stage, tiny_data, **opts), tmp_path / "part", resume=True,
                 progress=False, ctx=CPU)
    resumed = read_metrics(tmp_path / "part")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for ref, got in zip(reference[3:], resumed[3:]):
        for key in ref:
            if key not in ("time", "seconds"):
                assert got[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), (key, ref, got)


def test_stage2_trains_only_the_late_heads(tiny_data, tiny_model_dir):
    from hypernst_cli.train.run import build_stage

    stage = build_stage(cfg_for("stylize", tiny_data, init=str(tiny_model_dir)), CPU)
    H = stage.H
    late = {id(p) for m in H.stylization_modules() for p in m.parameters()}
    assert late and len(late) < len(list(H.parameters()))
    stage.train_step(0)
    got = {n for n, p in H.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    allowed = {n for n, p in H.named_parameters() if id(p) in late}
    assert got and got <= allowed, sorted(got - allowed)[:5]
    for name, p in H.named_parameters():
        if name.startswith(("content_encoder.", "mask_encoder.")):
            assert p.grad is None and not p.requires_grad
        if name.startswith("heads."):
            layer = int(name.split(".")[1])
            assert (layer >= H.start_layer) == p.requires_grad, name
    # the output layers of the late heads got a signal (the trunks get theirs once the
    # zero-initialised output layers have moved)
    assert any(n.startswith(("outputs.", "shared.")) for n in got)


@pytest.mark.slow
def test_stage1_overfits_four_images(tiny_data, tiny_model_dir, tmp_path):
    train("reconstruct", tiny_data, tmp_path / "of", init=str(tiny_model_dir), steps=25,
          batch_size=4, lr=0.001, splits=["content"])
    losses = [r["loss"] for r in read_metrics(tmp_path / "of")]
    first, last = losses[0], float(np.mean(losses[-3:]))
    assert last <= 0.5 * first, (first, last)


def test_the_model_records_its_refinement_iterations_as_the_inference_default(
        tiny_data, tiny_model_dir, tmp_path):
    """hypernet.iterations in an exported model's config is the passes it was trained with, and
    the pipeline runs that many unless told otherwise."""
    from hypernst_cli.errors import UsageError
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    final = train("reconstruct", tiny_data, tmp_path / "rec", init=str(tiny_model_dir), steps=1,
                  iterations=2)
    assert json.loads((final / "config.json").read_text())["hypernet"]["iterations"] == 2
    models = load_models(str(final), None, torch.device("cpu"), INFERENCE_PARTS)
    assert HyperNSTPipeline(models, None, None).iterations == 2
    assert HyperNSTPipeline(models, None, None, iterations=4).iterations == 4
    with pytest.raises(UsageError, match="at least 1"):
        HyperNSTPipeline(models, None, None, iterations=0)


def test_missing_init_network_is_a_clear_error(tiny_data, tmp_path):
    from hypernst_cli.errors import UsageError

    with pytest.raises(UsageError, match="needs a trained 'generator' network in init") as exc:
        train("reconstruct", tiny_data, tmp_path / "x")
    # the hint names the stage that trains it (README's chain once lacked `train aladin`)
    assert "`hypernst train generator init=" in exc.value.one_line()
    with pytest.raises(UsageError, match="no training data"):
        from hypernst_cli.train.run import run_training

        cfg = load_train_config("generator", overrides=["model=tiny"])
        run_training(cfg, tmp_path / "y", progress=False, ctx=CPU)



@pytest.mark.slow
def test_torchrun_two_processes_gloo(prepared, tiny_model_dir, tmp_path):
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "HYPERNST_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--standalone", "-m", "hypernst_cli", "-q", "train", "reconstruct",
           f"init={tiny_model_dir}", f"data={prepared}", "steps=2", "batch_size=1",
           "device=cpu", "sample_every=0", "-o", str(run_dir)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpts = sorted((run_dir / "checkpoints").iterdir())
    assert [p.name for p in ckpts] == ["step-00000002.safetensors"]
    assert (run_dir / "final" / "model.safetensors").exists()
    # rank 0 alone writes: one metrics line per logged step, not two
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1


@pytest.mark.parametrize("stage", ["reconstruct", "encoder"])
def test_gradient_checkpointing_gives_the_same_losses(stage, tiny_data, tiny_model_dir, tmp_path,
                                                     monkeypatch):
    import torch.utils.checkpoint as tuc

    from hypernst_cli.train.run import run_training

    calls = []
    real = tuc.checkpoint
    monkeypatch.setattr(tuc, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    losses = []
    for flag in (False, True):
        ctx = TrainContext(device=torch.device("cpu"), grad_checkpointing=flag)
        cfg = cfg_for(stage, tiny_data, init=str(tiny_model_dir), steps=2, grad_checkpointing=flag)
        run_training(cfg, tmp_path / f"gc-{flag}", progress=False, ctx=ctx)
        losses.append([r["loss"] for r in read_metrics(tmp_path / f"gc-{flag}")])
    assert calls  # the second run recomputed activations
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def _stylize_stage_after(tiny_data, tiny_model_dir, steps: int, **options):
    """A stylize stage on the tiny model, trained ``steps`` steps from seed 0 (no R1)."""
    from hypernst_cli.train.run import build_stage

    torch.manual_seed(0)
    stage = build_stage(cfg_for("stylize", tiny_data, init=str(tiny_model_dir),
                                **{"loss.r1": 0.0, **options}), CPU)
    for step in range(steps):
        stage.train_step(step)
    return stage


def test_offset_penalty_counts_the_trained_layers_and_bounds_them(tiny_data, tiny_model_dir):
    """loss.offsets: the mean squared offset of the layers stage 2 trains (not the frozen ones),
    and training with it keeps those offsets smaller than training without it."""
    from hypernst_cli.pipeline.style_codes import arrange
    from hypernst_cli.train.run import build_stage

    def late_offsets_after(weight: float) -> float:
        stage = _stylize_stage_after(tiny_data, tiny_model_dir, 4, lr=0.01,
                                     **{"loss.offsets": weight})
        batch = stage.batch(stage.content, stage.content_sampler)
        codes = stage.content_codes[batch["index"]]
        with torch.no_grad():
            deltas = stage.H(batch["image"], batch["image"], arrange(codes, batch["mask"]))
        return float(stage.offset_penalty(deltas))

    stage = build_stage(cfg_for("stylize", tiny_data, init=str(tiny_model_dir)), CPU)
    start = stage.H.start_layer
    assert stage.trained_layers == [i for i in stage.H.tuned if i >= start]
    n = stage.H.n_layers
    early_only = [torch.full((2, 3), 5.0) if i < start else torch.zeros(2, 3) for i in range(n)]
    assert float(stage.offset_penalty(early_only)) == 0.0
    late = [torch.full((2, 3), 2.0) if i >= start else None for i in range(n)]
    assert float(stage.offset_penalty(late)) == pytest.approx(4.0)

    assert late_offsets_after(1000.0) < late_offsets_after(0.0)


def test_style_guidance_terms_are_logged_and_pull_outputs_to_the_style(tiny_data, tiny_model_dir):
    """loss.colour / code / structure (0 by default, the paper): with weights set, a stylize step
    logs each term, and training with a strong colour term brings the stylized outputs' colours
    closer to their styles' than training without it."""
    from hypernst_cli.pipeline.style_codes import N_REGIONS
    from hypernst_cli.train.losses import region_colour_loss
    from hypernst_cli.train.run import build_stage

    stage = build_stage(cfg_for("stylize", tiny_data, init=str(tiny_model_dir),
                                **{"loss.colour": 1.0, "loss.code": 1.0, "loss.structure": 1.0}), CPU)
    logs = stage.train_step(0)
    for key in ("loss_colour", "loss_code", "loss_structure"):
        assert math.isfinite(logs[key]) and logs[key] > 0
    # the logged total is the sum of the weighted terms the last pass backpropagated
    loss_cfg = stage.cfg["loss"]
    terms = (loss_cfg["rec"] * logs["loss_rec"]
             + sum(loss_cfg[k] * logs[f"loss_{k}"] for k in ("colour", "code", "structure"))
             + loss_cfg["style"] * (logs["loss_disc"] + logs["loss_pcd"]))
    assert logs["loss"] == pytest.approx(terms, rel=1e-5)
    plain = build_stage(cfg_for("stylize", tiny_data, init=str(tiny_model_dir)), CPU).train_step(0)
    assert "loss_colour" not in plain

    def colour_gap_after(weight: float) -> float:
        stage = _stylize_stage_after(tiny_data, tiny_model_dir, 10, lr=0.001,
                                     **{"loss.colour": weight, "loss.style": 0.0})
        cb, sb = stage.batch(stage.content, stage.content_sampler), stage.batch(stage.style, stage.style_sampler)
        codes = stage.style_codes[sb["index"]]
        y = stage.preview(cb["image"], cb["mask"], codes)
        return float(region_colour_loss(y, cb["mask"], sb["image"], sb["mask"], N_REGIONS))

    assert colour_gap_after(100.0) < 0.8 * colour_gap_after(0.0)


def test_stylize_layers_option_trains_only_the_chosen_heads(tiny_data, tiny_model_dir):
    from hypernst_cli.errors import UsageError
    from hypernst_cli.train.run import build_stage

    stage = build_stage(cfg_for("stylize", tiny_data, init=str(tiny_model_dir),
                                stylize_layers="torgb",
                                lr=0.01), CPU)
    assert stage.trained_layers == [7, 10, 13]
    before = {n: p.detach().clone() for n, p in stage.H.named_parameters()}
    stage.train_step(0)
    changed = {n.split(".")[0] + "." + n.split(".")[1] for n, p in stage.H.named_parameters()
               if not torch.equal(p, before[n])}
    assert changed and changed <= {"heads.7", "heads.10", "heads.13", "outputs.7", "outputs.10",
                                   "outputs.13"}
    with pytest.raises(UsageError, match="stylize_layers: must be 'late', 'torgb'"):
        build_stage(cfg_for("stylize", tiny_data, init=str(tiny_model_dir),
                            stylize_layers="colour"), CPU)


def test_stylize_without_the_style_term_leaves_the_discriminators_alone(tiny_data, tiny_model_dir):
    """loss.style = 0: nothing reads the discriminators, so they are neither run nor trained (and
    not reported as trained); with the term on they train."""
    def discriminator_changed(style: float) -> tuple[bool, str]:
        torch.manual_seed(0)
        from hypernst_cli.train.run import build_stage

        stage = build_stage(cfg_for("stylize", tiny_data, init=str(tiny_model_dir), lr_d=0.01,
                                    **{"loss.style": style, "loss.colour": 1.0}), CPU)
        before = [p.detach().clone() for p in stage.D.parameters()]
        logs = stage.train_step(0)
        assert math.isfinite(logs["loss"]) and ("loss_disc" in logs) == (style > 0)
        changed = any(not torch.equal(a, b) for a, b in zip(before, stage.D.parameters()))
        # the card says why they were left alone
        assert ("discriminators" in stage.notes) == (style == 0)
        return changed, stage.origin["discriminator"]

    assert discriminator_changed(0.0) == (False, "random")
    assert discriminator_changed(1.0) == (True, "trained")


def test_every_discriminator_trains_with_the_lazy_r1_optimiser(tiny_data, tiny_model_dir):
    """generator, encoder, autoencoder and stylize: their discriminators' Adam has
    lr x r / (r + 1) and betas ** (r / (r + 1)) for R1 every r steps, and holds every
    discriminator's parameters."""
    from hypernst_cli.train.run import build_stage

    ratio = 4 / 5
    init = {"init": str(tiny_model_dir)}
    for name, options, key, lr_key, betas in (
        ("generator", {}, "discriminator", "lr", (0.0, 0.99)),
        ("encoder", {**init, "loss.latent_disc": 0.1}, "latent_disc", "lr", (0.9, 0.999)),
        ("autoencoder", {**init, "loss.patch": 0.5}, "discriminator", "lr_d", (0.0, 0.99)),
        ("stylize", init, "discriminators", "lr_d", (0.0, 0.99)),
    ):
        stage = build_stage(cfg_for(name, tiny_data, **{"loss.r1_every": 4, **options}), CPU)
        group = stage.optimizers[key].param_groups[0]
        assert group["lr"] == pytest.approx(float(stage.cfg[lr_key]) * ratio), name
        assert group["betas"] == pytest.approx(tuple(b**ratio for b in betas)), name
        expected = {id(p) for k in ("discriminator", "patch_disc", "latent_disc")
                    if k in stage.modules for p in stage.modules[k].parameters()}
        assert {id(p) for p in group["params"]} == expected, name


def test_stylize_style_variants_add_graded_copies_with_their_own_codes(tiny_data, tiny_model_dir):
    """style_variants = k: every style image and k colour-graded copies are sampled, each with
    ALADIN codes of its own; 0 (the default) keeps the prepared set as it is."""
    from hypernst_cli.train.run import build_stage

    plain = build_stage(cfg_for("stylize", tiny_data, init=str(tiny_model_dir)), CPU)
    stage = build_stage(cfg_for("stylize", tiny_data, init=str(tiny_model_dir), style_variants=2,
                                **{"loss.colour": 1.0, "loss.style": 0.0}), CPU)
    n = len(plain.style)
    assert len(stage.style) == 3 * n and stage.style_codes.shape[0] == 3 * n
    assert torch.equal(stage.style_codes[::3], plain.style_codes)  # the originals' codes
    for i in range(n):
        for j in (1, 2):
            assert not torch.allclose(stage.style_codes[3 * i + j], stage.style_codes[3 * i])
    logs = stage.train_step(0)
    assert math.isfinite(logs["loss"]) and math.isfinite(logs["loss_colour"])
