"""The ALADIN stage's cross-face family positives (``family_positives``) on drawn faces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hypernst_cli.styles.families import HELDOUT_FAMILIES, TRAIN_FAMILIES
from hypernst_cli.train.config import load_train_config, stage_defaults
from hypernst_cli.train.data import make_batch
from hypernst_cli.train.trainer import TrainContext
from synthetic_faces import write_prepared

CPU = TrainContext(device=torch.device("cpu"))


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return write_prepared(tmp_path_factory.mktemp("aladin-families") / "data", n_content=6)


def aladin_stage(data: Path, **options: object):
    from hypernst_cli.train.run import build_stage

    base = {"model": "tiny", "data": str(data), "steps": 4, "batch_size": 6, "log_every": 1,
            "sample_every": 0, "checkpoint_every": 0, "warmup": 0, "style_fraction": 0.0}
    base.update(options)
    cfg = load_train_config("aladin", overrides=[f"{k}={json.dumps(v)}" for k, v in base.items()])
    return build_stage(cfg, CPU)


def test_family_positives_pair_two_faces_rendered_with_one_draw(faces, monkeypatch):
    import hypernst_cli.train.aladin as aladin

    seen = {}
    real = aladin.make_views

    def recording(images, styled, size, scale, gen, second=None):
        seen.update(images=images.clone(), styled=styled.clone(), second=dict(second or {}))
        return real(images, styled, size, scale, gen, second)

    monkeypatch.setattr(aladin, "make_views", recording)
    stage = aladin_stage(faces, family_positives=1.0, pseudo_style=1.0)
    position = stage.content_sampler.position
    views = stage.draw(0)
    stage.content_sampler.position = position
    idx = stage.content_sampler.next_batch(6)
    assert [p.row for p in views.family_pairs] == list(range(6))  # share 1: every photo
    assert not views.pseudo_styled.any()  # the family draw is the style of those rows
    for pair in views.family_pairs:
        assert pair.face == idx[pair.row] and pair.partner != pair.face
        assert pair.draw.family in TRAIN_FAMILIES and pair.draw.family not in HELDOUT_FAMILIES
        face = (make_batch(stage.content, [pair.face])["image"] + 1) / 2
        partner = (make_batch(stage.content, [pair.partner])["image"] + 1) / 2
        assert torch.allclose(seen["images"][pair.row], pair.draw.render(face)[0], atol=1e-6)
        assert torch.allclose(seen["second"][pair.row], pair.draw.render(partner)[0], atol=1e-6)
    assert len({p.draw.seed for p in views.family_pairs}) == 6  # a new draw per pair
    logs = stage.train_step(1)
    assert logs["family_pairs"] == pytest.approx(1.0) and logs["pseudo_styled"] == 0.0


def test_a_share_of_the_photos_and_the_same_step_the_same_pairs(faces):
    half = [aladin_stage(faces, family_positives=0.5, batch_size=8, style_fraction=0.25)
            for _ in range(2)]
    a, b = half[0].draw(3), half[1].draw(3)
    assert a.family_pairs == b.family_pairs and torch.equal(a.a, b.a) and torch.equal(a.b, b.b)
    counts = [len(half[0].draw(step).family_pairs) for step in range(4, 14)]
    assert 0 < sum(counts) < 6 * 10  # photo rows only (6 of 8), about half of them
    assert all(p.row < 6 for step in range(2) for p in half[1].draw(step).family_pairs)


def test_family_positives_off_keeps_the_views_of_before(faces):
    """family_positives = 0 (the default) draws nothing more from the step's generator: the views
    are those of the plain two-crops-of-one-image stage."""
    from hypernst_cli.train.pseudo_styles import make_views

    assert stage_defaults("aladin")["family_positives"] == 0.0
    stage = aladin_stage(faces, pseudo_style=0.5, style_fraction=0.25, batch_size=8)
    reference = aladin_stage(faces, pseudo_style=0.5, style_fraction=0.25, batch_size=8)
    views = stage.draw(2)
    # the views as the stage drew them before family positives existed
    gen = reference.step_generator(2)
    photos = make_batch(reference.content, reference.content_sampler.next_batch(6))["image"]
    arts = make_batch(reference.style, reference.style_sampler.next_batch(2))["image"]
    flags = torch.cat([torch.rand(6, generator=gen) < 0.5, torch.zeros(2, dtype=torch.bool)])
    a, b = make_views((torch.cat([photos, arts]) + 1) / 2, flags, reference.A.cfg.image_size,
                      reference.scale, gen)
    assert views.family_pairs == [] and torch.equal(views.pseudo_styled, flags)
    assert torch.equal(views.a, a) and torch.equal(views.b, b)
    assert "family_pairs" not in stage.train_step(0)


def _style_and_face_similarity(stage) -> tuple[float, float]:
    """Mean code cosine of (two faces, one draw) and of (one face, two draws), on new draws."""
    from hypernst_cli.styles.families import random_draw

    faces = (make_batch(stage.content, list(range(len(stage.content))))["image"] + 1) / 2
    gen = torch.Generator().manual_seed(2**20)
    draws = [random_draw(gen) for _ in range(6)]
    stage.A.eval()
    with torch.no_grad():
        codes = torch.stack([stage.A.encode(d.render(faces)) for d in draws])  # [draw, face, D]
    stage.A.train()
    n_draws, n_faces = codes.shape[:2]
    by_draw = torch.einsum("dfc,dgc->dfg", codes, codes)  # same draw, faces f and g
    by_face = torch.einsum("dfc,efc->fde", codes, codes)  # same face, draws d and e

    def off_diagonal(sims: torch.Tensor) -> torch.Tensor:
        return sims.sum() - sims.diagonal(dim1=1, dim2=2).sum()

    same_style = off_diagonal(by_draw) / (n_draws * n_faces * (n_faces - 1))
    same_face = off_diagonal(by_face) / (n_faces * n_draws * (n_draws - 1))
    return float(same_style), float(same_face)


def test_family_positives_make_codes_follow_the_style_across_faces(faces):
    """60 steps: with cross-face positives, two faces in one (unseen) draw get far closer codes
    than with crops of one image alone, and closer than one face in two draws."""
    trained = {}
    for share in (1.0, 0.0):
        stage = aladin_stage(faces, family_positives=share, pseudo_style=0.5, lr=0.002, steps=60)
        for step in range(60):
            stage.train_step(step)
        trained[share] = _style_and_face_similarity(stage)
    (style_fam, face_fam), (style_plain, _) = trained[1.0], trained[0.0]
    assert style_fam > style_plain + 0.15, trained
    assert style_fam > face_fam + 0.3, trained
