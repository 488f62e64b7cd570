"""`hypernst codes -o FILE` keeps every style, also when two files share a name."""

from __future__ import annotations

import shutil

import torch

from hypernst_cli.weights.checkpoint import load_tensors


def test_codes_file_keeps_styles_with_the_same_file_name(run_cli, portraits, tiny_model_dir,
                                                         isolated_cache, tmp_path):
    styles = []
    for folder, source in (("dupA", "watercolour"), ("dupB", "poster-portrait")):
        styles.append(tmp_path / folder / "st.png")
        styles[-1].parent.mkdir()
        shutil.copy(portraits / "styles" / f"{source}.png", styles[-1])
    out = tmp_path / "codes.safetensors"
    r = run_cli("--device", "cpu", "codes", *styles, "--weights", tiny_model_dir, "-o", out)
    assert r.exit_code == 0, r.stderr

    tensors, meta = load_tensors(out)
    # the keys of `unique_stems`, as other commands name their outputs: folder_stem on a clash
    assert set(tensors) == {"dupA_st.global", "dupA_st.regions", "dupB_st.global",
                            "dupB_st.regions"}
    assert meta["dupA_st.file"] == str(styles[0]) and meta["dupB_st.file"] == str(styles[1])
    assert not torch.equal(tensors["dupA_st.global"], tensors["dupB_st.global"])
    assert tensors["dupB_st.regions"].shape[0] == 3
