"""The analogy benchmark: SSIM, the colour-transfer baseline, items, scoring, the region test and
``hypernst evaluate --analogies`` end to end (tiny model, random weights; no shared data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hypernst_cli.errors import UsageError
from hypernst_cli.eval import analogies as an
from hypernst_cli.eval.colour import colour_transfer, rgb_to_lab
from hypernst_cli.styles.families import FAMILIES, HELDOUT_FAMILIES, TRAIN_FAMILIES

REPO = Path(__file__).resolve().parent.parent
#: the families the benchmark can measure in this checkout, named explicitly (the default,
#: the held-out families, may still be empty)
SOME_FAMILIES = list(FAMILIES)[:2]


def _photo(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * x * y], axis=-1) * 255
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _mask(size: int = 64, shift: int = 0) -> np.ndarray:
    """Background around, a face disc in the middle, hair on top of it."""
    y, x = np.mgrid[0:size, 0:size]
    m = np.zeros((size, size), np.uint8)
    m[(y - size / 2 - shift) ** 2 + (x - size / 2) ** 2 < (size / 3) ** 2] = 1
    m[(m == 1) & (y < size / 2 - size / 6 + shift)] = 2
    return m


def _faces(n: int = 3, size: int = 64) -> list[an.AnalogyFace]:
    return [an.AnalogyFace(f"f{i}", _photo(i, size), _mask(size, i)) for i in range(n)]


# --- SSIM and L1 -------------------------------------------------------------------------------


def test_ssim_is_one_for_identical_images_and_drops_with_noise():
    img = _photo(1)
    assert an.ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(0)
    values = [an.ssim(img, np.clip(img + rng.normal(0, s, img.shape), 0, 255).astype(np.uint8))
              for s in (5, 20, 60)]
    assert 1.0 > values[0] > values[1] > values[2]


def test_ssim_matches_the_reference_implementation_and_its_known_relations():
    from skimage.metrics import structural_similarity

    a, b = _photo(2), _photo(3)
    b = (0.6 * b + 0.4 * a[::-1]).astype(np.uint8)
    ref = structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert an.ssim(a, b) == pytest.approx(ref, abs=1e-6)
    assert an.ssim(a, b) == pytest.approx(an.ssim(b, a), abs=1e-12)  # symmetric
    # the negative of an image is anti-correlated: structure term -1, SSIM below 0
    grey = _photo(4)[..., 0].astype(np.float64)
    assert an.ssim(grey, 255 - grey) < 0
    # a constant offset leaves structure and contrast: only the luminance term drops
    shifted = np.clip(grey + 30, 0, 255)
    assert 0.8 < an.ssim(grey, shifted) < 1.0
    with pytest.raises(ValueError):
        an.ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


def test_l1_in_grey_levels_with_and_without_a_mask():
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 10, np.uint8)
    b[:2] = 30
    assert an.l1_grey(a, b) == pytest.approx(20.0)
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    assert an.l1_grey(a, b, mask) == pytest.approx(30.0)
    assert an.l1_grey(b, a, ~mask) == pytest.approx(10.0)


def test_colour_transfer_baseline_takes_the_exemplars_lab_moments():
    content, exemplar = _photo(5), _photo(6)[::-1]
    exemplar = np.clip(exemplar * np.array([0.7, 0.9, 1.1]) + 20, 0, 255).astype(np.uint8)
    out = colour_transfer(content, exemplar)
    lab_out = rgb_to_lab(out).reshape(-1, 3)
    lab_ex = rgb_to_lab(exemplar).reshape(-1, 3)
    lab_in = rgb_to_lab(content).reshape(-1, 3)
    np.testing.assert_allclose(lab_out.mean(0), lab_ex.mean(0), atol=1.0)
    np.testing.assert_allclose(lab_out.std(0), lab_ex.std(0), rtol=0.06, atol=0.5)
    assert np.abs(lab_in.mean(0) - lab_ex.mean(0)).max() > 5  # the test had something to move


# --- items -------------------------------------------------------------------------------------


def test_items_cover_ordered_pairs_per_draw_with_unseen_seeds():
    items = an.plan_items(3, SOME_FAMILIES, draws=2, seed=0)
    assert len(items) == len(SOME_FAMILIES) * 2 * 6
    assert all(it.exemplar_face != it.content_face for it in items)
    assert all(it.draw.seed >= an.EVAL_SEED_BASE for it in items)
    for family in SOME_FAMILIES:
        seeds = {it.draw.seed for it in items if it.draw.family == family}
        assert len(seeds) == 2
    assert [it.draw.seed for it in an.plan_items(3, SOME_FAMILIES, seed=0)] == \
           [it.draw.seed for it in items]  # the seed fixes the draws
    assert {it.draw.seed for it in an.plan_items(3, SOME_FAMILIES, seed=1)}.isdisjoint(
        {it.draw.seed for it in items})
    limited = an.plan_items(3, SOME_FAMILIES, draws=2, seed=0, limit=5, region_mixed=4)
    assert len(limited) == 5 * len(SOME_FAMILIES) + 4
    mixed = [it for it in limited if it.mixed]
    assert all(set(it.region_draws) == {0, 1, 2} for it in mixed)
    assert all(len({d.seed for d in it.region_draws.values()}) == 3 for it in mixed)
    # the three regions' styles differ (a family with few parameters is redrawn)
    assert all(len({(d.family, repr(d.params)) for d in it.region_draws.values()}) == 3
               for it in mixed)


def test_family_selection_defaults_to_held_out_and_never_falls_back_silently():
    if HELDOUT_FAMILIES:
        assert an.resolve_families(None) == list(HELDOUT_FAMILIES)
    else:
        with pytest.raises(UsageError, match="HELDOUT_FAMILIES is empty"):
            an.resolve_families(None)
    assert an.resolve_families(["train"]) == list(TRAIN_FAMILIES)
    assert an.resolve_families([",".join(SOME_FAMILIES)]) == SOME_FAMILIES
    with pytest.raises(UsageError, match="unknown style family 'nope'"):
        an.resolve_families(["nope"])
    for family in FAMILIES:
        expected = an.HELDOUT_SPLIT if family in HELDOUT_FAMILIES else an.UNSEEN_SEED_SPLIT
        assert an.family_split(family) == expected


@pytest.mark.parametrize("family", list(FAMILIES))
def test_exemplar_and_truth_are_one_draw_on_two_faces(family):
    faces = _faces(2)
    item = an.plan_items(2, [family], draws=1)[0]
    exemplar, truth = an.render_item(item, faces)
    a, b = faces[item.exemplar_face], faces[item.content_face]
    assert exemplar.shape == truth.shape == b.image.shape and exemplar.dtype == np.uint8
    np.testing.assert_array_equal(an.render(a.image, a.mask, item), exemplar)
    np.testing.assert_array_equal(an.render(b.image, b.mask, item), truth)
    assert not np.array_equal(truth, b.image)  # the draw changed the face


def test_region_mixed_truth_takes_each_regions_draw_by_the_content_mask():
    faces = _faces(2)
    item = next(it for it in an.plan_items(2, SOME_FAMILIES, region_mixed=1) if it.mixed)
    b = faces[item.content_face]
    _, truth = an.render_item(item, faces)
    for r, draw in item.region_draws.items():
        whole = an.render(b.image, b.mask, an.AnalogyItem(0, 0, draw=draw))
        np.testing.assert_array_equal(truth[b.mask == r], whole[b.mask == r])


# --- scoring -----------------------------------------------------------------------------------


class _TableModel:
    """An injected model: returns what ``answer(content, exemplar)`` says."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = 0

    def stylize(self, content, content_mask, exemplar, exemplar_mask, strength=1.0):
        self.calls += 1
        return content.copy() if strength == 0 else self.answer(content, exemplar)

    def reconstruct(self, content, content_mask):
        return content.copy()


def _oracle(faces, items):
    truths = {}
    for it in items:
        exemplar, truth = an.render_item(it, faces)
        truths[(faces[it.content_face].image.tobytes(), exemplar.tobytes())] = truth
    return lambda content, exemplar: truths[(content.tobytes(), exemplar.tobytes())]


def test_a_model_returning_the_truth_beats_both_baselines():
    faces = _faces(3)
    items = an.plan_items(3, SOME_FAMILIES, draws=2, region_mixed=3)
    model = _TableModel(_oracle(faces, items))
    report = an.run_analogies(faces, model, items)
    s = report.summary
    assert s["overall"]["beats_both_pct"] == 100.0
    assert s["overall"]["l1"]["model"] == 0.0 and s["overall"]["ssim"]["model"] == 1.0
    assert s["overall"]["l1_ratio"]["unstyled"] == 0.0
    assert s["overall"]["texture"]["model"] == 0.0 and s["overall"]["texture_beats_both_pct"] == 100.0
    for family in SOME_FAMILIES:
        assert s["families"][family]["items"] == 12
    mixed = s["region_mixed"]
    assert mixed["items"] == 3 and mixed["beats_both_pct"] == 100.0
    assert mixed["own_region_pct"] == 100.0 and mixed["own_region_tests"] >= 6
    # a perfect score on a few items is still only a sample: its interval reaches below 100 %
    low, high = s["overall"]["beats_both_ci95"]
    assert 70.0 < low < 100.0 and high == 100.0
    assert "95 % intervals" in an.markdown(report)
    assert all(v["model"] == 0.0 for v in mixed["region_l1"].values() if v["model"] is not None)
    # different families give different outputs for one content: the sensitivity is measured
    assert s["sensitivity"]["across_families_l1"] > 0
    assert s["sensitivity"]["across_families_faces"] == 3
    assert s["strength0"]["strength0_vs_reconstruction_l1"] == 0.0


def test_a_model_returning_the_content_does_not_beat_the_baselines():
    faces = _faces(3)
    items = an.plan_items(3, SOME_FAMILIES, draws=2, region_mixed=2)
    report = an.run_analogies(faces, _TableModel(lambda c, e: c.copy()), items)
    s = report.summary
    assert s["overall"]["beats_both_pct"] == 0.0  # ties with the unstyled baseline never win
    assert s["overall"]["beats_both_ci95"][0] == 0.0 and 0.0 < s["overall"]["beats_both_ci95"][1] < 30.0
    assert s["overall"]["l1_ratio"]["unstyled"] == pytest.approx(1.0)
    assert s["overall"]["l1"]["model"] == pytest.approx(s["overall"]["l1"]["unstyled"])
    assert s["sensitivity"]["across_families_l1"] == 0.0  # the style changes nothing
    assert len(report.rows) == len(items)
    assert all(not r["model_beats_both"] for r in report.rows)


def test_own_region_test_on_synthetic_truths():
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 1
    mask[:3] = 2
    truths = {r: np.full((20, 20, 3), 60 * (r + 1), np.uint8) for r in (0, 1, 2)}
    right = np.zeros((20, 20, 3), np.uint8)
    for r in (0, 1, 2):
        right[mask == r] = truths[r][mask == r]
    assert an.own_region_hits(right, truths, mask) == {0: True, 1: True, 2: True}
    # the face takes the hair's style: the face misses, the others still hit
    swapped = right.copy()
    swapped[mask == 1] = truths[2][mask == 1]
    assert an.own_region_hits(swapped, truths, mask) == {0: True, 1: False, 2: True}
    # an output exactly between two regions' styles (equal errors) is a miss
    between = right.copy()
    between[mask == 1] = 90  # truths: 60 (background), 120 (face), 180 (hair)
    hits = an.own_region_hits(between, truths, mask)
    assert hits[0] is True and hits[1] is False
    # two regions with the same style cannot be told apart: not tested
    same = dict(truths)
    same[2] = truths[1]
    hits = an.own_region_hits(right, same, mask)
    assert hits[1] is None and hits[2] is None and hits[0] is True
    # a region with too few pixels is not tested
    tiny = mask.copy()
    tiny[:3] = 0
    tiny[0, 0] = 2
    assert an.own_region_hits(right, truths, tiny)[2] is None


def test_the_floor_is_the_truth_for_a_deterministic_family_and_below_one_other_seed():
    faces = _faces(2, size=96)
    b = faces[1]
    duotone = an.AnalogyItem(0, 1, draw=an_draw("duotone"))
    _, truth = an.render_item(duotone, faces)
    # duotone has no random texture: knowing the draw is knowing the truth
    np.testing.assert_array_equal(an.floor_render(b.image, b.mask, duotone, seeds=3), truth)
    pencil = an.AnalogyItem(0, 1, draw=an_draw("pencil"))
    _, truth = an.render_item(pencil, faces)
    floor = an.floor_render(b.image, b.mask, pencil, seeds=5)
    one = an.floor_render(b.image, b.mask, pencil, seeds=1)
    # the strokes fall elsewhere with another seed; the median of several is the better guess
    assert 0 < an.l1_grey(floor, truth) < an.l1_grey(one, truth)
    assert an.l1_grey(floor, truth) < an.l1_grey(b.image, truth)


def an_draw(family):
    from hypernst_cli.styles.families import draw_style

    return draw_style(family, an.eval_seed(0, family, 0))


def test_the_floor_of_a_region_mixed_item_keeps_each_regions_draw():
    faces = _faces(2)
    item = next(it for it in an.plan_items(2, ["duotone", "posterize"], region_mixed=1) if it.mixed)
    b = faces[item.content_face]
    _, truth = an.render_item(item, faces)
    # both families are deterministic: the re-seeded regions render the truth exactly
    np.testing.assert_array_equal(an.floor_render(b.image, b.mask, item, seeds=2), truth)


def test_the_held_out_families_get_a_row_of_their_own():
    faces = _faces(3)
    heldout, train = HELDOUT_FAMILIES[0], TRAIN_FAMILIES[0]
    items = an.plan_items(3, [heldout, train], draws=1)
    report = an.run_analogies(faces, _TableModel(lambda c, e: c.copy()), items)
    held = report.summary["heldout"]
    assert held["items"] == 6
    assert held["l1"]["model"] == pytest.approx(report.summary["families"][heldout]["l1"]["model"])
    assert f"| **held-out families** | {an.HELDOUT_SPLIT} | 6 |" in an.markdown(report)
    only_train = an.run_analogies(faces, _TableModel(lambda c, e: c.copy()), items[6:])
    assert only_train.summary["heldout"] is None
    assert "held-out families**" not in an.markdown(only_train)


def test_report_files_and_table_rows(tmp_path):
    faces = _faces(3)
    items = an.plan_items(3, SOME_FAMILIES, draws=1, region_mixed=2)
    report = an.run_analogies(faces, _TableModel(lambda c, e: e.copy()), items, sheet_rows=4)
    files = an.write_analogy_report(report, tmp_path / "out")
    data = json.loads(files["json"].read_text())
    assert len(data["items"]) == len(items) and data["eval_seed_base"] == an.EVAL_SEED_BASE
    table = files["markdown"].read_text()
    for family in SOME_FAMILIES:
        assert f"| {family} | {an.family_split(family)} | 6 |" in table
    assert f"| {an.REGION_MIXED} |" in table and "Own-region test" in table
    assert "L1 floor" in table and all("l1_floor" in r for r in data["items"])
    assert "## Texture" in table and f"| **all families** | {6 * len(SOME_FAMILIES)} |" in table
    assert all(set(row["texture"]) == set(an.SUBJECTS) for row in data["items"])
    assert len(report.sheet) == 4  # capped, every group shown
    groups = {label.split()[0] for label, _ in report.sheet}
    assert groups == {*SOME_FAMILIES, an.REGION_MIXED}
    from PIL import Image

    assert Image.open(files["contact sheet"]).width > 5 * 96


# --- the command -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aligned_faces(tmp_path_factory) -> list[Path]:
    """Aligned faces made here: the repo's example face, its mirror, and skimage's astronaut
    aligned by the project's aligner."""
    import skimage.data

    from hypernst_cli.faces import FaceProcessor
    from hypernst_cli.io import load_image, save_image

    folder = tmp_path_factory.mktemp("aligned")
    face = load_image(REPO / "examples" / "content" / "face-1.png")
    astronaut = FaceProcessor(backend="dlib").align_largest(skimage.data.astronaut(), 256).image
    paths = [folder / "face-1.png", folder / "face-1-mirror.png", folder / "astronaut.png"]
    for path, image in zip(paths, (face, face[:, ::-1], astronaut)):
        save_image(np.ascontiguousarray(image), path)
    return paths


def test_cli_writes_report_table_and_sheet(run_cli, tiny_model_dir, isolated_cache, tmp_path,
                                           aligned_faces):
    out = tmp_path / "bench"
    r = run_cli("--device", "cpu", "evaluate", "--analogies", "--faces", aligned_faces[0],
                "--faces", aligned_faces[1], "--faces", aligned_faces[2], "-w", tiny_model_dir,
                "--config", "tiny", "--backend", "dlib",
                "--families", ",".join(SOME_FAMILIES), "--draws", "1", "--limit", "2",
                "--region-mixed", "1", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert "# Analogy benchmark" in r.stdout and "; palette 0; " in r.stdout  # its settings
    for family in SOME_FAMILIES:
        assert f"| {family} | {an.family_split(family)} | 2 |" in r.stdout
    assert "| **all families** |" in r.stdout and f"| {an.REGION_MIXED} |" in r.stdout
    data = json.loads((out / "analogies.json").read_text())
    assert len(data["items"]) == 2 * len(SOME_FAMILIES) + 1
    assert data["resolution"] == 64 and data["settings"]["families"] == SOME_FAMILIES
    row = data["items"][0]
    assert set(row["l1"]) == set(an.SUBJECTS) and 0 <= row["l1"]["model"] <= 255
    assert -1 <= row["ssim"]["model"] <= 1
    # the pipeline's own strength-0 definition: the content's codes, i.e. its reconstruction
    assert data["summary"]["strength0"]["strength0_vs_reconstruction_l1"] == 0.0
    assert (out / "analogies.md").read_text() in r.stdout
    from PIL import Image

    sheet = Image.open(out / "analogies_contact.png")
    assert sheet.height > (2 * len(SOME_FAMILIES) + 1) * 96


def test_cli_json_summary(run_cli, tiny_model_dir, isolated_cache, tmp_path, aligned_faces):
    r = run_cli("--device", "cpu", "evaluate", "--analogies", "--faces", aligned_faces[0].parent,
                "-w", tiny_model_dir, "--config", "tiny", "--backend", "dlib",
                "--families", SOME_FAMILIES[0], "--draws", "1", "--json", "-o", tmp_path / "o")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["summary"]["overall"]["items"] == 6  # 3 faces in the folder: 6 ordered pairs
    assert data["summary"]["region_mixed"] is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--families", "nope"], "unknown style family 'nope'"),
        (["--families", SOME_FAMILIES[0], "--content", "x.png"], "not used with --analogies"),
        (["--families", SOME_FAMILIES[0], "-w", "compact"], "measures one model"),
        ([], None),  # filled in below: no --faces
    ],
)
def test_cli_bad_input_is_one_line(run_cli, tiny_model_dir, isolated_cache, tmp_path,
                                   aligned_faces, extra, message):
    args = ["--device", "cpu", "evaluate", "--analogies", "-w", tiny_model_dir, "--config",
            "tiny", "-o", tmp_path / "o", *extra]
    if message is None:
        message = "needs aligned faces"
        args += ["--families", SOME_FAMILIES[0]]
    else:
        args += ["--faces", aligned_faces[0], "--faces", aligned_faces[1]]
    r = run_cli(*args)
    assert r.exit_code == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_rejects_unusable_faces(run_cli, tiny_model_dir, isolated_cache, tmp_path,
                                    aligned_faces):
    from hypernst_cli.io import save_image

    wide = tmp_path / "wide.png"
    save_image(np.zeros((64, 96, 3), np.uint8), wide)
    small = tmp_path / "small.png"
    save_image(np.zeros((32, 32, 3), np.uint8), small)
    base = ["--device", "cpu", "evaluate", "--analogies", "-w", tiny_model_dir, "--config",
            "tiny", "--families", SOME_FAMILIES[0], "-o", tmp_path / "o"]
    for faces, message in (([aligned_faces[0]], "at least 2 faces"),
                           ([aligned_faces[0], wide], "not a square aligned face"),
                           ([aligned_faces[0], small], "smaller than the model's 64 px"),
                           ([aligned_faces[0], tmp_path / "missing.png"], "no such file")):
        r = run_cli(*base, *[a for f in faces for a in ("--faces", f)])
        assert r.exit_code == 2, (faces, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()  # nothing written for a refused run


def test_plain_evaluate_still_needs_content_and_style(run_cli, tmp_path):
    r = run_cli("evaluate", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "--content and --style are required" in r.stderr


def test_contact_sheet_rows_are_capped_and_spread_over_groups_and_draws():
    items = an.plan_items(3, SOME_FAMILIES, draws=2, region_mixed=2)
    rows = [(f"{i}", []) for i in range(len(items))]
    picked = [int(label) for label, _ in an._pick_sheet_rows(items, rows, 10)]
    assert len(picked) == 10 and len(set(picked)) == 10
    groups = [items[i].group for i in picked]
    assert groups.count(an.REGION_MIXED) == 2  # a small group shows whole
    for family in SOME_FAMILIES:
        assert groups.count(family) == 4
        assert len({items[i].draw.seed for i in picked if items[i].group == family}) == 2
    assert len(an._pick_sheet_rows(items, rows, 100)) == len(items)


def test_share_interval_is_the_wilson_score_interval():
    # 26 of 36: the held-out share of the shipped model; values from the closed form
    low, high = an.share_interval(26, 36)
    assert low == pytest.approx(56.01, abs=0.01) and high == pytest.approx(84.15, abs=0.01)
    assert an.share_interval(18, 36) == pytest.approx((34.47, 65.53), abs=0.01)  # symmetric at half
    assert an.share_interval(0, 0) is None
    few, many = an.share_interval(5, 10), an.share_interval(50, 100)
    assert many[1] - many[0] < few[1] - few[0]  # more items, a narrower interval
