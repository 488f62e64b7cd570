"""Analogy supervision in stage 2 (train/analogy.py, ``[analogy]`` of the stylize config) on a
prepared folder drawn at test time (tests/synthetic_faces.py), tiny model, CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hypernst_cli.errors import UsageError
from hypernst_cli.styles.families import HELDOUT_FAMILIES, TRAIN_FAMILIES, StyleDraw
from hypernst_cli.train.config import load_train_config, stage_defaults
from hypernst_cli.io.tensors import to_uint8
from hypernst_cli.train.data import make_batch
from hypernst_cli.train.trainer import TrainContext, read_metrics
from synthetic_faces import write_prepared

CPU = TrainContext(device=torch.device("cpu"))


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return write_prepared(tmp_path_factory.mktemp("analogy") / "data", n_content=5, n_style=2)


def cfg_for(stage: str, data: Path, **options: object) -> dict:
    base = {"model": "tiny", "data": str(data), "steps": 4, "batch_size": 2, "log_every": 1,
            "sample_every": 0, "checkpoint_every": 0, "loss.style": 0.0}
    base.update(options)
    return load_train_config(stage, overrides=[f"{k}={json.dumps(v)}" for k, v in base.items()])


def stylize_stage(data: Path, model: Path, **options: object):
    from hypernst_cli.train.run import build_stage

    torch.manual_seed(0)
    return build_stage(cfg_for("stylize", data, init=str(model), **options), CPU)


def content_items(stage, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    b = make_batch(stage.content, indices)
    return b["image"], b["mask"]


def rendered(draw: StyleDraw, image: torch.Tensor) -> torch.Tensor:
    """draw on one image [3, H, W] in [-1, 1], back in [-1, 1]."""
    return draw.render((image[None] + 1) / 2)[0] * 2 - 1


def test_defaults_keep_the_paper_stage(faces, tiny_model_dir, monkeypatch):
    """analogy.share = 0 by default: no item is drawn, nothing is logged, and the unpaired terms
    see the whole batch."""
    from hypernst_cli.train.analogy import AnalogySource

    defaults = stage_defaults("stylize")["analogy"]
    assert defaults["share"] == 0.0 and defaults["region_mixed"] == 0.0 and defaults["families"] == []
    stage = stylize_stage(faces, tiny_model_dir, **{"loss.colour": 1.0})
    assert stage.n_analogy == 0 and stage.n_unpaired == 2

    def refuse(*args, **kwargs):
        raise AssertionError("an analogy item was drawn with analogy.share = 0")

    monkeypatch.setattr(AnalogySource, "draw", refuse)
    logs = stage.train_step(0)
    assert not any(k.startswith(("loss_analogy", "analogy_")) for k in logs)
    assert math.isfinite(logs["loss_colour"])


def test_items_pair_two_faces_and_render_one_draw_on_both(faces, tiny_model_dir):
    stage = stylize_stage(faces, tiny_model_dir, **{"analogy.share": 1.0})
    indices = [0, 1, 2, 3, 4, 0]
    content, masks = content_items(stage, indices)
    items = stage.analogy.draw(3, 0, content, masks, indices)
    assert all(a != b for a, b in zip(items.exemplar_index, indices))
    assert len(set(items.exemplar_index)) > 1  # a uniform draw among the others, not a fixed one
    for i, (draws, a) in enumerate(zip(items.draws, items.exemplar_index)):
        assert set(draws) == {0, 1, 2} and len({id(d) for d in draws.values()}) == 1
        draw = draws[0]
        assert draw.family in TRAIN_FAMILIES and 0 <= draw.seed < 2**31
        a_image, a_mask = content_items(stage, [a])
        assert torch.allclose(items.target[i], rendered(draw, content[i]), atol=1e-6)
        assert torch.allclose(items.exemplar[i], rendered(draw, a_image[0]), atol=1e-6)
        assert torch.equal(items.exemplar_mask[i], a_mask[0])
        assert not torch.allclose(items.target[i], items.exemplar[i])  # two different faces


def test_exemplar_codes_come_from_its_render_on_its_own_mask(faces, tiny_model_dir):
    """Eq. 1 on T(A) with A's mask, through the stage's own code provider (the model's path)."""
    stage = stylize_stage(faces, tiny_model_dir, **{"analogy.share": 1.0})
    indices = [0, 1, 2]
    content, masks = content_items(stage, indices)
    items = stage.analogy.draw(5, 0, content, masks, indices)
    assert items.exemplar_codes.shape == (3, 4, stage.style_codes.shape[-1])
    provider = stage.code_provider
    for i, a in enumerate(items.exemplar_index):
        image = to_uint8(items.exemplar[i : i + 1])[0]
        a_mask = stage.content.load(a)[1]
        on_a = provider.for_image(image, mask=a_mask).table
        on_b = provider.for_image(image, mask=masks[i].numpy().astype(np.uint8)).table
        assert torch.allclose(items.exemplar_codes[i], on_a, atol=1e-5)
        assert not torch.allclose(items.exemplar_codes[i], on_b, atol=1e-4)
        # the style is in the codes: the unstyled face A has other codes
        plain = provider.for_image(stage.content.load(a)[0], mask=a_mask).table
        assert not torch.allclose(items.exemplar_codes[i], plain, atol=1e-4)


def test_region_mixed_items_compose_their_draws_by_each_faces_mask(faces, tiny_model_dir):
    stage = stylize_stage(faces, tiny_model_dir, **{"analogy.share": 1.0,
                                                   "analogy.region_mixed": 1.0})
    indices = [1, 3]
    content, masks = content_items(stage, indices)
    items = stage.analogy.draw(2, 0, content, masks, indices)
    for i, (draws, a) in enumerate(zip(items.draws, items.exemplar_index)):
        assert len({id(d) for d in draws.values()}) == 3  # one draw per region
        a_image, a_mask = content_items(stage, [a])
        for region, draw in draws.items():
            on_b, on_a = masks[i] == region, a_mask[0] == region
            assert on_b.any() and on_a.any()
            assert torch.allclose(items.target[i][:, on_b], rendered(draw, content[i])[:, on_b],
                                  atol=1e-6)
            assert torch.allclose(items.exemplar[i][:, on_a], rendered(draw, a_image[0])[:, on_a],
                                  atol=1e-6)
    plain = stylize_stage(faces, tiny_model_dir, **{"analogy.share": 1.0})
    single = plain.analogy.draw(2, 0, content, masks, indices)
    assert all(len({id(d) for d in draws.values()}) == 1 for draws in single.draws)


def test_the_same_step_draws_the_same_items(faces, tiny_model_dir):
    options = {"analogy.share": 1.0, "analogy.region_mixed": 0.5}
    first, second = (stylize_stage(faces, tiny_model_dir, **options) for _ in range(2))
    indices = [0, 2]
    content, masks = content_items(first, indices)
    a, b = (s.analogy.draw(7, 0, content, masks, indices) for s in (first, second))
    assert a.exemplar_index == b.exemplar_index and a.draws == b.draws
    assert torch.equal(a.exemplar, b.exemplar) and torch.equal(a.target, b.target)
    assert torch.equal(a.exemplar_codes, b.exemplar_codes)
    later = first.analogy.draw(8, 0, content, masks, indices)
    assert later.draws != a.draws


def test_renders_on_threads_equal_renders_one_by_one(faces, tiny_model_dir, monkeypatch):
    """A step's renders run on a few CPU threads; every family's picture must be what it is
    rendered alone (each draw has its own seeded generator, nothing shared between them)."""
    from hypernst_cli.styles.families import draw_style
    from hypernst_cli.train.analogy import render_item, render_items

    stage = stylize_stage(faces, tiny_model_dir, **{"analogy.share": 1.0})
    content, masks = content_items(stage, [0, 1, 2, 3, 4])
    jobs = [(content[i % 5], masks[i % 5], {r: draw_style(name, i) for r in range(3)})
            for i, name in enumerate(TRAIN_FAMILIES)]
    alone = [render_item(*job) for job in jobs]
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)  # 8 worker threads
    together = render_items(jobs)
    assert all(torch.equal(a, b) for a, b in zip(alone, together))


def test_resume_gives_the_same_analogy_losses(faces, tiny_model_dir, tmp_path):
    from hypernst_cli.train.run import run_training

    opts = dict(init=str(tiny_model_dir), steps=4, checkpoint_every=2,
                **{"analogy.share": 0.5, "analogy.region_mixed": 0.5, "loss.colour": 1.0})
    run_training(cfg_for("stylize", faces, **opts), tmp_path / "full", progress=False, ctx=CPU)
    run_training(cfg_for("stylize", faces, **{**opts, "steps": 2}), tmp_path / "part",
                 progress=False, ctx=CPU)
    torch.manual_seed(999)
    np.random.seed(999)
    run_training(cfg_for("stylize", faces, **opts), tmp_path / "part", resume=True,
                 progress=False, ctx=CPU)
    reference, resumed = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "part")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for ref, got in zip(reference[2:], resumed[2:]):
        assert "loss_analogy" in ref and "loss_colour" in ref  # both kinds of item in a batch
        for key in ref:
            if key not in ("time", "seconds", "wait_items"):  # timings
                assert got[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), key


def test_items_drawn_ahead_are_the_items_drawn_in_step(faces, tiny_model_dir, tmp_path,
                                                      monkeypatch):
    """analogy.prefetch draws the next step's items on a background thread while a step trains:
    every step after the first takes them from there, and the run's losses are the run's
    without it (the same items, drawn earlier)."""
    import threading

    from hypernst_cli.train.analogy import AnalogySource
    from hypernst_cli.train.run import run_training

    drawn_on: list[tuple[int, str]] = []
    draw = AnalogySource.draw

    def recording(self, step, *args):
        drawn_on.append((step, threading.current_thread().name))
        return draw(self, step, *args)

    monkeypatch.setattr(AnalogySource, "draw", recording)
    opts = dict(init=str(tiny_model_dir), steps=4,
                **{"analogy.share": 0.5, "analogy.region_mixed": 0.5, "loss.colour": 1.0})
    logs = {}
    for prefetch in (True, False):
        drawn_on.clear()
        run_training(cfg_for("stylize", faces, **opts, **{"analogy.prefetch": prefetch}),
                     tmp_path / str(prefetch), progress=False, ctx=CPU)
        logs[prefetch] = read_metrics(tmp_path / str(prefetch))
        threads = {step: name for step, name in drawn_on if step < 4}
        if prefetch:
            assert threads[0] == "MainThread"
            assert all(threads[s].startswith("analogy-items") for s in (1, 2, 3)), threads
        else:
            assert set(threads.values()) == {"MainThread"} and sorted(threads) == [0, 1, 2, 3]
    for ahead, now in zip(logs[True], logs[False]):
        assert "wait_items" in ahead
        for key in ahead:
            if key not in ("time", "seconds", "wait_items"):
                assert ahead[key] == pytest.approx(now[key], rel=1e-5, abs=1e-6), key


def test_held_out_families_are_never_drawn(faces, tiny_model_dir, monkeypatch):
    import hypernst_cli.train.analogy as analogy

    stage = stylize_stage(faces, tiny_model_dir, **{"analogy.share": 1.0,
                                                   "analogy.region_mixed": 0.5})
    content, masks = content_items(stage, [0, 1])
    drawn = {d.family for step in range(20)
             for item in stage.analogy.draw(step, 0, content, masks, [0, 1]).draws
             for d in item.values()}
    assert drawn <= set(TRAIN_FAMILIES) and not drawn & set(HELDOUT_FAMILIES)
    # with a family held out, the default draws only the others and naming it is refused
    monkeypatch.setattr(analogy, "HELDOUT_FAMILIES", ("posterize",))
    monkeypatch.setattr(analogy, "TRAIN_FAMILIES", ("duotone",))
    split = stylize_stage(faces, tiny_model_dir, **{"analogy.share": 1.0})
    families = {d.family for step in range(20)
                for item in split.analogy.draw(step, 0, content, masks, [0, 1]).draws
                for d in item.values()}
    assert families == {"duotone"}
    with pytest.raises(UsageError, match="held out"):
        stylize_stage(faces, tiny_model_dir, **{"analogy.share": 1.0,
                                               "analogy.families": ["posterize"]})
    with pytest.raises(UsageError, match="unknown style family"):
        stylize_stage(faces, tiny_model_dir, **{"analogy.families": ["crayon-of-nowhere"]})
    with pytest.raises(UsageError, match="must lie in"):
        stylize_stage(faces, tiny_model_dir, **{"analogy.share": 1.5})


def test_family_weights_set_how_often_each_family_is_drawn(faces, tiny_model_dir):
    options = {"analogy.share": 1.0, "analogy.families": ["duotone", "posterize", "cartoon"]}
    content, masks = content_items(stylize_stage(faces, tiny_model_dir, **options), [0, 1])

    def counts(weights: str) -> dict[str, int]:
        stage = stylize_stage(faces, tiny_model_dir, **options,
                              **{"analogy.family_weights": weights})
        gen = torch.Generator().manual_seed(0)
        from hypernst_cli.train.analogy import draw_item_styles

        drawn = [draw_item_styles(gen, stage.analogy.families, 0.0,
                                  stage.analogy.family_weights)[0].family for _ in range(600)]
        return {name: drawn.count(name) for name in options["analogy.families"]}

    uniform = counts("")
    assert all(150 <= n <= 250 for n in uniform.values()), uniform
    weighted = counts("posterize=4, cartoon=0")
    assert weighted["cartoon"] == 0 and 0.72 <= weighted["posterize"] / 600 <= 0.88, weighted
    # the step's items follow the weights too
    stage = stylize_stage(faces, tiny_model_dir, **options,
                          **{"analogy.family_weights": "duotone=0,cartoon=0"})
    items = [stage.analogy.draw(step, 0, content, masks, [0, 1]) for step in range(3)]
    assert {d.family for it in items for r in it.draws for d in r.values()} == {"posterize"}
    for bad, message in [("pastel=2", "not drawn here"), ("ink=2", "not drawn here"),
                         ("posterize", "NAME=WEIGHT"), ("posterize=-1", "NAME=WEIGHT"),
                         ("duotone=0,posterize=0,cartoon=0", "no family")]:
        with pytest.raises(UsageError, match=message):
            stylize_stage(faces, tiny_model_dir, **options, **{"analogy.family_weights": bad})


def test_a_share_of_the_batch_is_analogy_items_the_rest_unpaired(faces, tiny_model_dir):
    """share 0.5 of a batch of 4: two analogy items, two style images judged by the unpaired
    terms; share 1 leaves the unpaired terms without items (and the discriminators alone)."""
    half = stylize_stage(faces, tiny_model_dir, batch_size=4,
                         **{"analogy.share": 0.5, "loss.colour": 1.0})
    assert (half.n_analogy, half.n_unpaired) == (2, 2)
    logs = half.train_step(0)
    for key in ("loss_analogy", "analogy_l1", "analogy_laplacian", "loss_colour"):
        assert math.isfinite(logs[key]) and logs[key] > 0, key
    assert logs["loss"] == pytest.approx(logs["loss_rec"] + logs["loss_colour"]
                                         + logs["loss_analogy"], rel=1e-6)
    assert stylize_stage(faces, tiny_model_dir, **{"analogy.share": 0.1}).n_analogy == 1

    full = stylize_stage(faces, tiny_model_dir, **{"analogy.share": 1.0, "loss.style": 2.0})
    assert full.n_unpaired == 0 and not full.adversarial and "analogy" in full.notes
    before = [p.detach().clone() for p in full.D.parameters()]
    logs = full.train_step(0)
    assert "loss_disc" not in logs and math.isfinite(logs["loss_analogy"])
    assert all(torch.equal(a, b) for a, b in zip(before, full.D.parameters()))


def _held_analogy_loss(stage, step: int = 10**6) -> float:
    """The analogy L1 of the stage's outputs on fixed items (one step's draws, all faces)."""
    indices = list(range(len(stage.content)))
    content, masks = content_items(stage, indices)
    items = stage.analogy.draw(step, 0, content, masks, indices)
    y = stage.preview(content, masks, items.exemplar_codes)
    return float((y - items.target).abs().mean())


def test_analogy_training_moves_outputs_towards_the_targets(faces, tiny_model_dir):
    """Eight steps of analogy items alone (no reconstruction pass) bring the outputs on items
    never trained on (other draws) well towards their targets. (The per-step loss is not
    compared: it swings with each step's draws.)"""
    stage = stylize_stage(faces, tiny_model_dir, lr=0.003, batch_size=4,
                          **{"loss.rec": 0.0, "analogy.share": 1.0, "analogy.families": ["duotone"]})
    start = _held_analogy_loss(stage)
    for step in range(8):
        stage.train_step(step)
    end = _held_analogy_loss(stage)
    assert end < 0.6 * start, (start, end)


def test_lowpass_and_texture_terms_join_the_analogy_loss(faces, tiny_model_dir):
    """analogy.lowpass (L1 at a quarter of the resolution) and analogy.texture (the patch texture
    distance) are logged and summed into the analogy loss at their weights; at 0 (the default)
    neither runs."""
    plain = stylize_stage(faces, tiny_model_dir, batch_size=2, **{"analogy.share": 1.0})
    logs = plain.train_step(0)
    assert "analogy_texture" not in logs and "analogy_lowpass" not in logs
    weights = {"analogy.l1": 0.5, "analogy.laplacian": 0.0, "analogy.lowpass": 2.0,
               "analogy.texture": 10.0}
    stage = stylize_stage(faces, tiny_model_dir, batch_size=2, **{"analogy.share": 1.0}, **weights)
    logs = stage.train_step(0)
    for key in ("analogy_texture", "analogy_lowpass", "analogy_l1"):
        assert math.isfinite(logs[key]) and logs[key] > 0, key
    assert logs["loss_analogy"] == pytest.approx(
        0.5 * logs["analogy_l1"] + 2.0 * logs["analogy_lowpass"] + 10.0 * logs["analogy_texture"],
        rel=1e-5)


def test_through_palette_scores_the_output_after_the_models_palette(faces, tiny_model_dir):
    """analogy.through_palette: each item carries its exemplar's palette table (as the tool
    computes it for a style image), the loss is taken after the model config's palette
    post-process on the contents' masks, and its gradient reaches the outputs."""
    import dataclasses

    from hypernst_cli.configs import PaletteConfig
    from hypernst_cli.pipeline.code_cache import palette_and_inks
    from hypernst_cli.pipeline.palette import Palette, apply_palettes, region_quantiles

    options = {"analogy.share": 1.0, "analogy.laplacian": 0.0}
    plain = stylize_stage(faces, tiny_model_dir, batch_size=2, **options)
    stage = stylize_stage(faces, tiny_model_dir, batch_size=2, **options,
                          **{"analogy.through_palette": True})
    stage.model_cfg = dataclasses.replace(stage.model_cfg,
                                          palette=PaletteConfig(amount=1.0, regions=0.5,
                                                                inks=0.5, ink_regions=1.0))
    indices = [0, 2]
    content, masks = content_items(stage, indices)
    items = stage.analogy.draw(3, 0, content, masks, indices)
    assert plain.analogy.draw(3, 0, content, masks, indices).palette is None
    # the exemplar's palette and inks are the ones the tool computes for it as a style image file
    for table, inks, exemplar, mask in zip(items.palette, items.inks, items.exemplar,
                                           items.exemplar_mask):
        expected = palette_and_inks(to_uint8(exemplar[None])[0], mask.numpy().astype(np.uint8))
        torch.testing.assert_close(table, expected[0].float())
        torch.testing.assert_close(inks, expected[1].float())
    torch.testing.assert_close(items.palette, region_quantiles(items.exemplar, items.exemplar_mask),
                               atol=0.01, rtol=0)
    y = stage.preview(content, masks, items.exemplar_codes).detach().requires_grad_()
    loss, _ = stage.analogy_term(y, items.target, palette=items.palette, inks=items.inks,
                                 masks=masks)
    # the map by the config's region weight, then the pull to the inks by theirs
    moved = apply_palettes(y, [Palette(t, 1.0, torch.full((3,), 0.5), k, 0.5, torch.ones(3))
                               for t, k in zip(items.palette, items.inks)], masks)
    value = float(loss.detach())
    assert value == pytest.approx(float((moved - items.target).abs().mean().detach()), rel=1e-5)
    assert value != pytest.approx(float((y - items.target).abs().mean().detach()), rel=1e-3)
    loss.backward()
    assert torch.isfinite(y.grad).all() and float(y.grad.abs().sum()) > 0
    logs = stage.train_step(0)
    assert math.isfinite(logs["loss_analogy"]) and logs["loss_analogy"] > 0
