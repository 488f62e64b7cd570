"""Outputs that would replace an input, outputs that are files, and out-of-range training
options: refused with exit 2 before anything is written."""

from __future__ import annotations

import shutil

import pytest

from hypernst_cli.errors import UsageError
from hypernst_cli.train.config import load_train_config
from hypernst_cli.weights.checkpoint import MODEL_FILE


def test_export_refuses_to_overwrite_its_source_file(run_cli, tiny_model_dir, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(tiny_model_dir, src)
    before = (src / MODEL_FILE).read_bytes()
    r = run_cli("weights", "export", src / MODEL_FILE, "-o", src)
    assert r.exit_code == 2, r.stderr
    assert "overwrite" in r.stderr and "Traceback" not in r.stderr
    assert (src / MODEL_FILE).read_bytes() == before


@pytest.mark.parametrize("target", ["other", "model"])
def test_export_to_an_existing_file_is_refused(run_cli, tiny_model_dir, tmp_path, target):
    out = tmp_path / "existing.txt"
    out.write_text("hi\n")
    if target == "model":
        src = tmp_path / "src"
        shutil.copytree(tiny_model_dir, src)
        out = src / MODEL_FILE
    else:
        src = tiny_model_dir
    before = out.read_bytes()
    r = run_cli("weights", "export", src, "-o", out)
    assert r.exit_code == 2, r.stderr
    assert f"-o {out} is a file; give a folder" in r.stderr
    assert out.read_bytes() == before


def test_train_to_an_existing_file_is_refused(run_cli, tmp_path):
    from synthetic_faces import write_prepared

    data = write_prepared(tmp_path / "data", n_content=3, n_style=2)
    out = tmp_path / "existing.txt"
    out.write_text("hi\n")
    r = run_cli("--device", "cpu", "train", "generator", "model=tiny", f"data={data}", "steps=2",
                "batch_size=2", "device=cpu", "-o", out)
    assert r.exit_code == 2, r.stderr
    assert f"-o {out} is a file; give a folder" in r.stderr
    assert out.read_text() == "hi\n"


@pytest.mark.parametrize("stage,override,name", [
    ("generator", "lr=-0.1", "lr"), ("generator", "lr=nan", "lr"), ("generator", "lr=inf", "lr"),
    ("stylize", "lr_d=-1", "lr_d"), ("autoencoder", "lr_encoder=-0.1", "lr_encoder"),
    ("generator", "batch_size=0", "batch_size"), ("generator", "batch_size=-1", "batch_size"),
    ("generator", "steps=0", "steps"), ("generator", "steps=-3", "steps"),
    ("generator", "steps=2.5", "steps"),
])
def test_out_of_range_training_options_are_refused(stage, override, name):
    with pytest.raises(UsageError, match=f"'{name}' must be"):
        load_train_config(stage, overrides=[override])


def test_show_config_refuses_out_of_range_options(run_cli, tmp_path):
    r = run_cli("train", "generator", "batch_size=0", "--show-config", "-o", tmp_path / "run")
    assert r.exit_code == 2
    assert "'batch_size' must be an integer >= 1" in r.stderr
    assert not (tmp_path / "run").exists()


def test_valid_training_options_still_load():
    # a learning rate of 0 freezes that part (the spatial recipe's lr_encoder = 0)
    assert load_train_config("autoencoder", overrides=["lr_encoder=0"])["lr_encoder"] == 0
    cfg = load_train_config("stylize", overrides=["lr=0.001", "lr_d=2e-4", "steps=1",
                                                   "batch_size=1"])
    assert (cfg["lr"], cfg["steps"], cfg["batch_size"]) == (0.001, 1, 1)
