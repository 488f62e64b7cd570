"""recipes/paper: the paper's two stages as configs + one command; a dry run on `tiny` (CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hypernst_cli.errors import HypernstError
from hypernst_cli.train.assemble import assemble
from hypernst_cli.train.config import load_train_config
from synthetic_faces import write_prepared

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "paper"


def test_the_step_files_hold_the_papers_settings():
    rec = load_train_config("reconstruct", RECIPE / "reconstruct.toml")
    sty = load_train_config("stylize", RECIPE / "stylize.toml")
    assert rec["batch_size"] == sty["batch_size"] == 1 and rec["iterations"] == sty["iterations"] == 3
    assert sty["loss"]["style"] == 2.0 and sty["loss"]["rec"] == 1.0  # lambda2 = 2 (Table 2)
    assert sty["analogy"]["share"] == 0.0 and sty["style_variants"] == 0
    assert sty["loss"]["colour"] == sty["loss"]["code"] == sty["loss"]["structure"] == 0.0
    from hypernst_cli.configs import get_config

    paper = get_config("paper")
    assert paper.hypernet.start_layer == 13 and paper.hypernet.global_code
    assert (paper.patch_disc.patch_size, paper.patch_disc.patches_per_region) == (32, 3)


def test_dry_run_on_tiny_runs_both_stages_and_continues(tiny_model_dir, tmp_path):
    data = write_prepared(tmp_path / "data", n_content=3, n_style=2)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable, "PYTHONPATH": str(REPO),
           "PARTS": str(tiny_model_dir), "CONFIG": "tiny", "DRY_RUN": "1",
           "EXTRA": "device=cpu", "HYPERNST_CACHE": str(tmp_path / "cache")}
    cmd = ["bash", str(RECIPE / "run.sh"), str(data), str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for step in ("encoder", "reconstruct", "stylize"):
        final = out / "runs" / step / "final"
        assert json.loads((final / "metrics.json").read_text())["steps"] == 2, step
    config = (out / "runs" / "stylize" / "config.toml").read_text()
    assert "batch_size = 1" in config and "style = 2.0" in config
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    assert metrics["networks"]["hypernet"] == "trained"
    assert list(metrics["stages"]) == ["encoder", "reconstruct", "stylize"]
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count(": done (") == 3


def test_assemble_takes_each_network_from_the_first_source_and_checks_it(tiny_model_dir, tmp_path):
    from hypernst_cli.weights.checkpoint import load_model_folder

    out = assemble(tmp_path / "init", [str(tiny_model_dir)], "tiny")
    folder = load_model_folder(out)
    assert set(folder.networks) >= {"generator", "encoder", "aladin", "hypernet"}
    assert folder.extra["assembled_from"]["generator"] == str(tiny_model_dir)
    with pytest.raises(HypernstError):  # tiny networks do not fit the 256 px paper config
        assemble(tmp_path / "bad", [str(tiny_model_dir)], "compact")


def _official_aladin(ours: dict) -> dict:
    """Our ALADIN state dict under the official checkpoint's names (aladinVIT_bamfg_64.47.pt)."""
    import re

    from hypernst_cli.models.official_encoders import _ALADIN_RENAMES

    official = {}
    for key, value in ours.items():
        for theirs, mine in _ALADIN_RENAMES:
            m = re.match("^" + re.escape(mine).replace(r"\{i\}", r"(\d+)"), key)
            if m:
                name = theirs.replace("{i}", m.group(1)) if m.groups() else theirs
                official["enc_style." + name + key[m.end():]] = value
                break
        else:
            raise AssertionError(key)
    return official


def test_assemble_takes_aladin_from_the_folder_hypernst_convert_wrote(run_cli, tiny_model_dir,
                                                                       tmp_path):
    """The paper recipe's documented path: download aladinVIT_bamfg_64.47.pt, `hypernst convert
    aladin FILE -o DIR`, then DIR as a part (PARTS="stylegan2-ffhq-256 DIR")."""
    import torch

    from hypernst_cli.weights.checkpoint import load_model_folder

    ours = load_model_folder(tiny_model_dir).networks["aladin"]
    torch.save(_official_aladin({k: v.float() + 1 for k, v in ours.items()}),
               tmp_path / "aladinVIT_bamfg_64.47.pt")
    r = run_cli("convert", "aladin", tmp_path / "aladinVIT_bamfg_64.47.pt", "-o", tmp_path / "al")
    assert r.exit_code == 0, r.stderr
    out = assemble(tmp_path / "init", [str(tmp_path / "al"), str(tiny_model_dir)], "tiny")
    folder = load_model_folder(out)
    assert folder.extra["assembled_from"]["aladin"] == str(tmp_path / "al")
    assert folder.extra["assembled_from"]["generator"] == str(tiny_model_dir)
    assert all(torch.equal(folder.networks["aladin"][k].float(), ours[k].float() + 1) for k in ours)


def test_assemble_names_the_real_steps_for_a_part_with_no_direct_download(tmp_path, monkeypatch,
                                                                          capsys):
    """`assemble DST ... aladin-vit` said "download it from ... and pass it with --weights", an
    option assemble does not have (and the downloaded file needs converting first)."""
    from hypernst_cli.train.assemble import main

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # named with the recipe's other part: the hint shows PARTS as it should be
    code = main([str(tmp_path / "init"), "stylegan2-ffhq-256", "aladin-vit", "--config", "tiny"])
    err = capsys.readouterr().err.strip()
    assert code == 3, err  # missing weights (errors.py), not bad usage
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert "aladinVIT_bamfg_64.47.pt" in err and "https://github.com/DanRuta/ALADIN/releases" in err
    assert "hypernst convert aladin aladinVIT_bamfg_64.47.pt -o DIR" in err
    assert 'PARTS="stylegan2-ffhq-256 DIR"' in err and "--weights" not in err, err
    assert not (tmp_path / "init").exists()


def test_the_paper_recipe_without_parts_names_the_steps_and_starts_nothing(tmp_path):
    """Its default PARTS named `aladin-vit`, which no program can fetch or find: the run always
    stopped in assemble."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PARTS"}
    env.update({"PYTHON": sys.executable, "PYTHONPATH": str(REPO), "HF_HOME": str(tmp_path / "hf")})
    proc = subprocess.run(["bash", str(RECIPE / "run.sh"), str(tmp_path / "data"), str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert "hypernst convert aladin aladinVIT_bamfg_64.47.pt -o ALADIN_DIR" in err
    assert 'PARTS="stylegan2-ffhq-256 ALADIN_DIR"' in err
    assert "hypernst download stylegan2-ffhq-256" in err
    assert not out.exists()


def test_the_spatial_continuation_recipe_runs_on_tiny(tiny_detail_model_dir, tmp_path):
    """recipes/compact/spatial/run.sh, the shipped model's recipe, end to end on `tiny` (2 steps
    per stage): the spatial path with the detail post-process off, A(s) and the content skip
    added, every stage."""
    data = write_prepared(tmp_path / "data", n_content=4, n_style=2)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable, "PYTHONPATH": str(REPO),
           "DIRECTIONS": "0", "HYPERNST_CACHE": str(tmp_path / "cache"),
           "EXTRA": "steps=2 batch_size=2 sample_every=0 checkpoint_every=0 device=cpu"}
    cmd = ["bash", str(REPO / "recipes" / "compact" / "spatial" / "run.sh"), str(data), str(out),
           str(tiny_detail_model_dir)]  # detail on in the source: the recipe switches it off
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["generator"]["feature_resolution"] == 32 and config["hypernet"]["global_code"]
    assert config["detail"]["strength"] == 0.0
    assert config["hypernet"]["skip_width"] == 16
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    assert list(metrics["stages"]) == ["aladin-families", "autoencoder-spatial", "stylize-analogy",
                                       "stylize-global", "stylize-more", "stylize-skip",
                                       "stylize-texture", "stylize-texture-more"]
    assert metrics["trained_by"]["hypernet"] == "stylize-texture-more"

    # recipes/compact/grow256/run.sh from that model: grown to twice its size (RESOLUTION),
    # the new block trained alone, then stage 2 twice (the second led by L1)
    grown = tmp_path / "grown"
    cmd = ["bash", str(REPO / "recipes" / "compact" / "grow256" / "run.sh"), str(data), str(grown),
           str(out / "model")]
    proc = subprocess.run(cmd, cwd=tmp_path, env={**env, "RESOLUTION": "128"}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    config = json.loads((grown / "model" / "config.json").read_text())
    assert config["generator"]["resolution"] == 128 and config["hypernet"]["input_size"] == 64
    metrics = json.loads((grown / "model" / "metrics.json").read_text())
    # the grown model's history runs from the first stage of the model it grew
    assert list(metrics["stages"]) == ["aladin-families", "autoencoder-spatial", "stylize-analogy",
                                       "stylize-global", "stylize-more", "stylize-skip",
                                       "stylize-texture", "stylize-texture-more", "autoencoder-grow",
                                       "stylize-grow", "stylize-grow-l1"]
    assert metrics["trained_by"]["hypernet"] == "stylize-grow-l1"
    assert metrics["trained_by"]["encoder"] == "autoencoder-spatial"
    # the encoder is frozen while the new block trains (train_from_layer)
    trained = metrics["stages"]["autoencoder-grow"]["trained"]
    assert "generator" in trained and "encoder" not in trained
