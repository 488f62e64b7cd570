"""The compact recipe's stages (aladin, autoencoder), its input selection and run.sh (tiny, CPU)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hypernst_cli.pipeline.models import INFERENCE_PARTS, load_models
from hypernst_cli.train.config import load_train_config
from hypernst_cli.train.trainer import TrainContext, read_metrics

FACES = ["face-1.png", "face-2.png", "face-3.png", "astronaut-mirror.png"]
STYLES = ["painted-face-2.png", "pencil-astronaut.png", "duotone-face-1.png", "neon.png"]
#: a hold-out list for the `portraits` data folder, in the form of recipes/compact/holdout.txt
TEST_HOLDOUT = ["faces/astronaut.png", "faces/face-1-mirror.png", "faces/face-3.png",
                "photos/astronaut.jpg", "photos/face-1-scene.jpg", "photos/face-2-scene.jpg",
                "styles/poster-portrait.png", "styles/painted-face-3.png", "styles/coffee.png",
                "styles/duotone-face-3.png", "styles/ink.png", "styles/waves.png"]
CPU = TrainContext(device=torch.device("cpu"))
REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "compact"


@pytest.fixture(scope="module")
def prepared(portraits, tmp_path_factory) -> Path:
    """4 faces + 4 styles through `hypernst prepare` at 64 px."""
    from hypernst_cli.cli.app import main

    root = tmp_path_factory.mktemp("recipe-prepare")
    for split, names, src in (("content", FACES, "faces"), ("style", STYLES, "styles")):
        (root / split).mkdir()
        for name in names:
            shutil.copy(portraits / src / name, root / split / name)
    data = root / "data"
    with pytest.raises(SystemExit) as exc:
        main(["-q", "prepare", str(root / "content"), str(root / "style"), "-o", str(data),
              "--size", "64", "--backend", "dlib"])
    assert (exc.value.code or 0) == 0
    return data


def cfg_for(stage: str, data: Path, **options: object) -> dict:
    base = {"model": "tiny", "data": str(data), "steps": 20, "batch_size": 4, "log_every": 1,
            "sample_every": 0, "checkpoint_every": 0}
    base.update(options)
    return load_train_config(stage, overrides=[f"{k}={json.dumps(v)}" for k, v in base.items()])


def train(stage: str, data: Path, run_dir: Path, **options: object) -> Path:
    from hypernst_cli.train.run import run_training

    return run_training(cfg_for(stage, data, **options), run_dir, progress=False, ctx=CPU)


def finite_rows(run_dir: Path, n: int) -> list[dict]:
    rows = read_metrics(run_dir)
    assert len(rows) == n
    for row in rows:
        for key, value in row.items():
            assert math.isfinite(value), (key, value)
    return rows


# --- pseudo-styles and the contrastive loss ------------------------------------------------------


def test_pseudo_style_is_fixed_by_its_generator_and_views_share_it():
    from hypernst_cli.train.pseudo_styles import make_views, pseudo_style

    torch.manual_seed(0)
    image = torch.rand(3, 64, 64)
    a = pseudo_style(image, torch.Generator().manual_seed(5))
    b = pseudo_style(image, torch.Generator().manual_seed(5))
    c = pseudo_style(image, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == image.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    assert (a - image).abs().mean() > 0.01
    # full crops (scale 1) of a styled image: both views are the same styled image, maybe flipped
    images = torch.rand(2, 3, 64, 64)
    va, vb = make_views(images, torch.tensor([True, False]), 64, (1.0, 1.0),
                        torch.Generator().manual_seed(1))
    for x, y in zip(va, vb):
        assert torch.allclose(x, y, atol=1e-5) or torch.allclose(x, y.flip(-1), atol=1e-5)
    assert not torch.allclose(va[0], images[0], atol=0.01)  # styled
    assert torch.allclose(va[1], images[1], atol=1e-5) or torch.allclose(va[1], images[1].flip(-1), atol=1e-5)


def test_nt_xent_matches_its_definition():
    from hypernst_cli.train.pseudo_styles import nt_xent

    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    b = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    loss, stats = nt_xent(a, b, 0.5)
    z = torch.cat([a, b])
    expected = 0.0
    for i in range(6):
        pos = (i + 3) % 6
        others = [j for j in range(6) if j != i]
        expected += -(z[i] @ z[pos] / 0.5 - torch.logsumexp(torch.stack([z[i] @ z[j] / 0.5 for j in others]), 0))
    assert float(loss) == pytest.approx(float(expected) / 6, rel=1e-5)
    # matching pairs give a low loss, full accuracy
    low, stats = nt_xent(a, a, 0.1)
    assert float(low) < float(loss) and float(stats["accuracy"]) == 1.0


# --- aladin ------------------------------------------------------------------------------------


def crop_margin(aladin: torch.nn.Module, data: Path) -> tuple[float, float]:
    """(mean cosine of two crops of one image, mean cosine of crops of different images)."""
    from hypernst_cli.train.common import ImageUnion
    from hypernst_cli.train.data import ImageSet, make_batch
    from hypernst_cli.train.pseudo_styles import random_view

    sets = ImageUnion([ImageSet(data / "content", 64), ImageSet(data / "style", 64)])
    images = (make_batch(sets, list(range(len(sets))))["image"] + 1) / 2
    gen = torch.Generator().manual_seed(1234)
    views = [torch.stack([random_view(im, 64, (0.3, 0.6), gen) for im in images]) for _ in range(2)]
    with torch.no_grad():
        a, b = (aladin.encode(v) for v in views)
    sim = a @ b.t()
    n = sim.shape[0]
    same = float(sim.diagonal().mean())
    other = float(sim[~torch.eye(n, dtype=torch.bool)].mean())
    return same, other


def test_aladin_stage_learns_style_codes(prepared, tmp_path):
    """20 steps, finite losses, the loss falls, and exported codes of two crops of one image are
    closer than codes of different images, by a wider margin than before training."""
    from hypernst_cli.configs import get_config
    from hypernst_cli.pipeline.models import init_networks

    torch.manual_seed(0)  # the stage's own seed (0) builds the same initial ALADIN
    before = init_networks(get_config("tiny"), ["aladin"], seed=0)["aladin"].eval()
    same0, other0 = crop_margin(before, prepared)

    final = train("aladin", prepared, tmp_path / "al", steps=20, batch_size=8, lr=0.002, warmup=0,
                  pseudo_style=0.5, style_fraction=0.5)
    rows = finite_rows(tmp_path / "al", 20)
    assert any(r["pseudo_styled"] > 0 for r in rows)
    losses = [r["loss"] for r in rows]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    models = load_models(str(final), None, torch.device("cpu"), INFERENCE_PARTS)
    meta = json.loads((final / "metrics.json").read_text())
    assert meta["networks"]["aladin"] == "trained" and meta["networks"]["generator"] == "random"
    same, other = crop_margin(models.aladin, prepared)
    assert same > other + 0.1, (same, other)
    assert same - other > (same0 - other0) + 0.1, ((same0, other0), (same, other))


def test_untrained_networks_stay_untrained_through_the_stages(prepared, tmp_path):
    """A network a stage only carries as a random initialisation is not passed on as if trained:
    the next stage initialises it afresh and its card still says random; a stage that needs it
    trained says so."""
    from hypernst_cli.errors import UsageError

    al = train("aladin", prepared, tmp_path / "al", steps=2, batch_size=4, warmup=0)
    ae = train("autoencoder", prepared, tmp_path / "ae", init=str(al), steps=2, batch_size=2)
    meta = json.loads((ae / "metrics.json").read_text())
    assert meta["networks"]["aladin"] == "init"
    assert meta["networks"]["hypernet"] == "random"
    assert "random initialisation" in (ae / "README.md").read_text()
    with pytest.raises(UsageError, match="needs a trained 'generator' network"):
        train("reconstruct", prepared, tmp_path / "rec", init=str(al), steps=1)
    # resuming a finished run exports again with the losses the run logged last
    from hypernst_cli.train.run import run_training

    before = json.loads((al / "metrics.json").read_text())["final"]
    run_training(cfg_for("aladin", prepared, steps=2, batch_size=4, warmup=0), tmp_path / "al",
                 resume=True, progress=False, ctx=CPU)
    after = json.loads((al / "metrics.json").read_text())["final"]
    assert after["loss"] == pytest.approx(before["loss"], rel=1e-4)


def test_aladin_resume_gives_the_same_losses(prepared, tmp_path):
    from hypernst_cli.train.run import run_training

    opts = dict(steps=6, checkpoint_every=3, batch_size=4, warmup=2)
    train("aladin", prepared, tmp_path / "full", **opts)
    run_training(cfg_for("aladin", prepared, **{**opts, "steps": 3}), tmp_path / "part",
                 progress=False, ctx=CPU)
    torch.manual_seed(999)
    run_training(cfg_for("aladin", prepared, **opts), tmp_path / "part", resume=True,
                 progress=False, ctx=CPU)
    ref, got = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "part")
    assert [r["step"] for r in got] == list(range(1, 7))
    for a, b in zip(ref[3:], got[3:]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)


# --- autoencoder -------------------------------------------------------------------------------


def test_autoencoder_stage_runs_exports_and_feeds_reconstruct(prepared, tiny_model_dir, tmp_path):
    final = train("autoencoder", prepared, tmp_path / "ae", init=str(tiny_model_dir), batch_size=2,
                  progressive_every=3, **{"loss.patch": 0.5, "loss.r1_every": 4})
    rows = finite_rows(tmp_path / "ae", 20)
    assert {"g_adv", "g_patch", "d_loss", "delta_reg", "laplacian"} <= set(rows[-1])
    assert any("r1" in r for r in rows)
    models = load_models(str(final), None, torch.device("cpu"), INFERENCE_PARTS)
    meta = json.loads((final / "metrics.json").read_text())
    assert meta["networks"] == {"generator": "trained", "encoder": "trained", "aladin": "init",
                                "hypernet": "init", "discriminator": "trained",
                                "patch_disc": "trained"}
    assert "mapping" in meta["notes"]
    # aladin carried over from init unchanged
    init = load_models(str(tiny_model_dir), None, torch.device("cpu"), ["aladin"])
    assert init.fingerprints["aladin"] == models.fingerprints["aladin"]
    # the exported encoder is centred on the mean w0 it gives the training images
    from hypernst_cli.pipeline.core import invert
    from hypernst_cli.train.common import ImageUnion
    from hypernst_cli.train.data import ImageSet, make_batch

    data = ImageUnion([ImageSet(prepared / "content", 64), ImageSet(prepared / "style", 64)])
    x = make_batch(data, list(range(len(data))))["image"]
    with torch.no_grad():
        w0 = invert(models.encoder, x)[:, 0]
    avg = models.encoder.latent_avg[0]
    assert torch.allclose(w0.mean(0), avg, atol=1e-4)
    assert "latent_avg" in meta["notes"]
    # the export is a valid init of stage 1
    rec = train("reconstruct", prepared, tmp_path / "rec", init=str(final), steps=2)
    assert json.loads((rec / "metrics.json").read_text())["networks"]["encoder"] == "init"


def test_recentred_encoder_computes_the_same_latents():
    from hypernst_cli.configs import get_config
    from hypernst_cli.pipeline.models import init_networks
    from hypernst_cli.train.autoencoder import recentre_encoder

    enc = init_networks(get_config("tiny"), ["encoder"], seed=3)["encoder"].eval()
    with torch.no_grad():
        enc.latent_avg.normal_()
        x = torch.rand(2, 3, 64, 64) * 2 - 1
        target = torch.randn(enc.style_dim)
        moved = recentre_encoder(enc, target)
        assert torch.allclose(moved(x), enc(x), atol=1e-4)
        assert torch.allclose(moved.latent_avg[0], target)


@pytest.fixture
def four_images(prepared, tmp_path) -> Path:
    """A prepared folder with 2 content + 2 style images (4 in all)."""
    data = tmp_path / "four"
    shutil.copytree(prepared, data)
    for split in ("content", "style"):
        images = sorted(p for p in (data / split).glob("*.png") if not p.name.endswith(".mask.png"))
        for p in images[2:]:
            p.unlink()
            p.with_name(p.stem + ".mask.png").unlink(missing_ok=True)
    return data


def test_autoencoder_overfits_four_images(four_images, tmp_path):
    train("autoencoder", four_images, tmp_path / "of", steps=30, batch_size=4, lr=0.005,
          lr_encoder=0.002, **{"loss.adv": 0.0})
    rec = [r["rec"] for r in read_metrics(tmp_path / "of")]
    first, last = rec[0], float(np.mean(rec[-3:]))
    assert last <= 0.5 * first, (first, last)


def test_autoencoder_resume_gives_the_same_losses(four_images, tmp_path):
    from hypernst_cli.train.run import run_training

    opts = {"steps": 6, "checkpoint_every": 3, "progressive_every": 2, "loss.patch": 0.5,
            "loss.r1_every": 2}
    train("autoencoder", four_images, tmp_path / "full", **opts)
    run_training(cfg_for("autoencoder", four_images, **{**opts, "steps": 3}), tmp_path / "part",
                 progress=False, ctx=CPU)
    torch.manual_seed(999)
    np.random.seed(999)
    run_training(cfg_for("autoencoder", four_images, **opts), tmp_path / "part", resume=True,
                 progress=False, ctx=CPU)
    ref, got = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "part")
    assert [r["step"] for r in got] == list(range(1, 7))
    for a, b in zip(ref[3:], got[3:]):
        for key in a:
            if key not in ("time", "seconds"):
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (key, a, b)


# --- inputs and the recipe -----------------------------------------------------------------------


def test_recipe_holdout_lists_an_evaluation_set():
    from hypernst_cli.train.select import read_holdout

    holdout = read_holdout(RECIPE / "holdout.txt")
    assert sum(h.startswith("faces/") for h in holdout) >= 3
    assert sum(h.startswith("photos/") for h in holdout) == 3
    assert sum(h.startswith("styles/") for h in holdout) >= 5


@pytest.mark.shared
def test_recipe_holdout_names_files_of_the_shared_data(shared_data):
    """Every hold-out of the recipe exists in ../shared/data, the folder the recipe trains on
    (select_inputs refuses a missing one)."""
    from hypernst_cli.train.select import read_holdout

    missing = [h for h in read_holdout(RECIPE / "holdout.txt") if not (shared_data / h).is_file()]
    assert not missing


@pytest.fixture
def holdout_file(tmp_path) -> Path:
    path = tmp_path / "holdout.txt"
    path.write_text("# the test's evaluation set\n" + "\n".join(TEST_HOLDOUT) + "\n")
    return path


def test_select_excludes_holdouts_and_draws_utkface_with_a_seed(portraits, holdout_file, tmp_path):
    from hypernst_cli.errors import UsageError
    from hypernst_cli.train.select import read_holdout, select_inputs

    holdout = read_holdout(holdout_file)
    assert holdout == TEST_HOLDOUT
    a = select_inputs(portraits, tmp_path / "a", holdout, utkface=20, seed=1)
    b = select_inputs(portraits, tmp_path / "b", holdout, utkface=20, seed=1)
    c = select_inputs(portraits, tmp_path / "c", holdout, utkface=20, seed=2)
    assert a["content"] == b["content"] and a["content"] != c["content"]
    names = {p.name for p in (tmp_path / "a").rglob("*")}
    assert not names & {Path(h).name for h in holdout}
    assert sum("utkface/" in p for p in a["content"]) == 20
    assert a["counts"]["style"] == len(list((portraits / "styles").iterdir())) - 6
    assert a["counts"]["content"] == 6 + 3 + 20 - 6
    with pytest.raises(UsageError, match="not found"):
        select_inputs(portraits, tmp_path / "d", ["faces/nope.png"])


def test_recipe_runs_end_to_end_and_continues(portraits, holdout_file, tmp_path):
    """run.sh with tiny overrides on the `portraits` data folder and its own hold-out list:
    select, prepare, six steps, a model with edit directions that `hypernst stylize` takes; a
    second run skips the finished steps."""
    out, dest = tmp_path / "out", tmp_path / "model"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable, "PYTHONPATH": str(REPO),
           "UTKFACE": "4", "SIZE": "64", "DIRECTIONS": "24", "HYPERNST_CACHE": str(tmp_path / "cache"),
           "HOLDOUT": str(holdout_file),
           "EXTRA": "model=tiny steps=2 batch_size=2 sample_every=0 checkpoint_every=0 device=cpu"}
    cmd = ["bash", str(RECIPE / "run.sh"), str(portraits), str(out), str(dest)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    held = {Path(h).stem for h in TEST_HOLDOUT}
    prepared = {p.stem for p in (out / "data").rglob("*.png")}
    assert prepared and not prepared & held
    steps = ("aladin", "autoencoder", "reconstruct", "stylize", "stylize-colour", "stylize-analogy")
    for stage in steps:
        assert (out / "runs" / stage / ".complete").exists()
        assert json.loads((out / "runs" / stage / "final" / "metrics.json").read_text())["steps"] == 2
    metrics = json.loads((dest / "metrics.json").read_text())
    assert all(metrics["networks"][n] == "trained" for n in INFERENCE_PARTS), metrics["networks"]
    assert set(metrics["trained_by"]) == set(INFERENCE_PARTS)  # what the folder holds
    assert metrics["trained_by"]["aladin"] == "aladin" and metrics["trained_by"]["hypernet"] == "stylize-analogy"
    assert list(metrics["stages"]) == list(steps)
    colour_step = (out / "runs" / "stylize-colour" / "config.toml").read_text()
    assert "style_variants = 2" in colour_step and 'init = "' + str(out / "runs" / "stylize" / "final") in colour_step
    # step 6: analogy items on half the batch, from step 5; step 1 with cross-face family positives
    analogy_step = read_metrics(out / "runs" / "stylize-analogy")
    assert all(math.isfinite(r["loss_analogy"]) and math.isfinite(r["loss_colour"]) for r in analogy_step)
    analogy_cfg = (out / "runs" / "stylize-analogy" / "config.toml").read_text()
    assert "share = 0.5" in analogy_cfg and 'init = "' + str(out / "runs" / "stylize-colour" / "final") in analogy_cfg
    assert "family_positives = 0.25" in (out / "runs" / "aladin" / "config.toml").read_text()
    assert "## Training history" in (dest / "README.md").read_text()
    from hypernst_cli.weights.checkpoint import load_model_folder

    assert set(load_model_folder(dest).networks["directions"]) == {"age", "smile", "pose"}

    styled = tmp_path / "styled.png"
    res = subprocess.run([sys.executable, "-m", "hypernst_cli", "-q", "--device", "cpu", "stylize",
                          str(portraits / "faces" / "astronaut.png"),
                          str(portraits / "styles" / "ink.png"), "-w", str(dest),
                          "-o", str(styled)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert styled.stat().st_size > 0

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count(": done (") == 6


def test_laplacian_l1_sees_every_frequency_band():
    from hypernst_cli.train.losses import laplacian_l1, laplacian_pyramid

    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    assert float(laplacian_l1(x, x)) == 0.0
    bands = laplacian_pyramid(x, 3)
    assert len(bands) == 4 and bands[-1].shape[-1] == 4
    # the pyramid is exact: collapsing it gives the image back
    up = bands[-1]
    for band in reversed(bands[:-1]):
        up = torch.nn.functional.interpolate(up, size=band.shape[-2:], mode="bilinear",
                                             align_corners=False) + band
    assert torch.allclose(up, x, atol=1e-5)
    # a uniform shift lives in the low-pass band only: it counts with that band's weight
    shift = laplacian_l1(x + 0.1, x, 3)
    assert float(shift) == pytest.approx(0.1 * 8 / 15, rel=1e-4)
