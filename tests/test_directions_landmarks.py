"""Landmark measures (smile, yaw) on synthetic 68-point faces and real faces, and edit trends."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hypernst_cli.eval.landmarks import (
    FFHQ_FACE_BOX,
    find_landmarks,
    measure_image,
    measure_landmarks,
    monotonic_trend,
    smile_measure,
    spearman,
    yaw_measure,
)


def synthetic_face() -> np.ndarray:
    """A frontal, symmetric 68-point face in dlib's order (image coordinates, y down)."""
    lm = np.zeros((68, 2))
    for i in range(17):  # jaw: a U from (20, 40) down to the chin (50, 95) and up to (80, 40)
        t = math.pi * i / 16
        lm[i] = (50 - 30 * math.cos(t), 40 + 55 * math.sin(t))
    lm[17:22] = [(25 + 5 * i, 30) for i in range(5)]  # brows
    lm[22:27] = [(55 + 5 * i, 30) for i in range(5)]
    lm[27:31] = [(50, 40 + 5 * i) for i in range(4)]  # nose bridge; 30 = tip at (50, 55)
    lm[31:36] = [(44 + 3 * i, 58) for i in range(5)]  # nostrils
    # eyes, each from its image-left corner: 36 (outer) .. 39 (inner), 42 (inner) .. 45 (outer)
    ring = [(-6, 0), (-3, -2), (3, -2), (6, 0), (3, 2), (-3, 2)]
    for centre, start in ((35.0, 36), (65.0, 42)):
        lm[start:start + 6] = [(centre + dx, 40 + dy) for dx, dy in ring]
    # mouth: corners at (38, 72) and (62, 72); outer lips 48-59, inner 60-67
    outer = [(38, 72), (42, 70), (46, 69), (50, 69.5), (54, 69), (58, 70), (62, 72),
             (58, 75), (54, 76), (50, 76.5), (46, 76), (42, 75)]
    inner = [(40, 72), (45, 71.5), (50, 71.5), (55, 71.5), (60, 72), (55, 72.5), (50, 72.5),
             (45, 72.5)]
    lm[48:60] = outer
    lm[60:68] = inner
    return lm


def test_synthetic_face_is_frontal_and_neutral():
    lm = synthetic_face()
    assert abs(yaw_measure(lm)) < 1e-9
    # mouth width 24 over an outer-eye span of 42, corners level with the lip centre
    assert smile_measure(lm) == pytest.approx(24 / 42, abs=1e-9)


def test_wider_and_lifted_mouth_scores_higher():
    lm = synthetic_face()
    base = smile_measure(lm)
    wide = lm.copy()
    wide[48:68, 0] = 50 + (lm[48:68, 0] - 50) * 1.3
    assert smile_measure(wide) > base
    lifted = lm.copy()
    for corner in (48, 54, 60, 64):
        lifted[corner, 1] -= 3  # corners up (y grows downwards)
    assert smile_measure(lifted) > base
    # lifting by 3 px adds 2 * 3 / eye_span
    assert smile_measure(lifted) - base == pytest.approx(6 / 42, abs=1e-9)
    drooped = lm.copy()
    for corner in (48, 54, 60, 64):
        drooped[corner, 1] += 3
    assert smile_measure(drooped) < base


def test_nose_shift_sets_the_yaw_sign():
    lm = synthetic_face()
    right, left = lm.copy(), lm.copy()
    right[30, 0] += 6
    left[30, 0] -= 6
    assert yaw_measure(right) > 0 > yaw_measure(left)
    assert yaw_measure(right) == pytest.approx(2 * 6 / 60)  # jaw width 60
    assert yaw_measure(right) == pytest.approx(-yaw_measure(left))


def test_measures_ignore_position_scale_and_rotation():
    lm = synthetic_face()
    lm[30, 0] += 4
    lm[48, 1] -= 2
    angle = math.radians(25)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = (lm @ rot.T) * 2.7 + np.array([130.0, -40.0])
    a, b = measure_landmarks(lm), measure_landmarks(moved)
    assert b["smile"] == pytest.approx(a["smile"], abs=1e-9)
    assert b["yaw"] == pytest.approx(a["yaw"], abs=1e-9)


def test_bad_landmarks_are_rejected():
    with pytest.raises(ValueError, match="68"):
        smile_measure(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="degenerate"):
        yaw_measure(np.zeros((68, 2)))


def test_real_faces(portraits):
    from hypernst_cli.io import load_image

    names = ["astronaut", "face-1-mirror", "face-3"]
    found = {n: measure_image(load_image(portraits / "faces" / f"{n}.png")) for n in names}
    for values in found.values():
        assert values is not None and all(np.isfinite(v) for v in values.values())
    # the astronaut smiles broadly, face-3 does not; face-1-mirror looks a little to the image's
    # right, the astronaut straight ahead
    assert found["astronaut"]["smile"] > found["face-3"]["smile"] + 0.15
    assert found["face-1-mirror"]["yaw"] > 0.12
    assert abs(found["astronaut"]["yaw"]) < 0.1
    # a mirrored face turns the other way
    flipped = measure_image(load_image(portraits / "faces" / "face-1-mirror.png")[:, ::-1])
    assert flipped["yaw"] < -0.12
    # a small crop is enlarged for the detector; the FFHQ box needs no detector
    small = load_image(portraits / "faces" / "face-1-mirror.png")[::4, ::4]  # 64 px
    assert measure_image(small) is not None
    aligned = measure_image(small, box="aligned")
    assert aligned["yaw"] == pytest.approx(found["face-1-mirror"]["yaw"], abs=0.1)
    blank = np.full((64, 64, 3), 128, np.uint8)
    assert measure_image(blank) is None
    assert measure_image(blank, box="aligned") is not None  # always a number: use on faces only


def test_ffhq_face_box_matches_the_detector(portraits):
    """FFHQ_FACE_BOX is where dlib's detector finds faces on aligned crops."""
    from hypernst_cli.faces.dlib_backend import DlibFaces
    from hypernst_cli.io import load_image

    faces = DlibFaces("hog")
    # the example faces: drawn by a generator trained on FFHQ crops, in FFHQ's layout
    for path in sorted((portraits / "faces").glob("face-*.png")):
        img = load_image(path)
        box = faces.detect(img)[0].box / img.shape[0]
        assert np.abs(box - np.array(FFHQ_FACE_BOX)).max() < 0.08, path.name
        lm = find_landmarks(img, box="aligned")
        assert lm.shape == (68, 2)


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [5, 5, 5]) is None
    assert spearman([1], [2]) is None
    # ties share their mean rank: x ranks 0,1,2,3 against y ranks 0.5,0.5,2,3
    assert spearman([1, 2, 3, 4], [1, 1, 2, 3]) == pytest.approx(0.9486833, abs=1e-6)


def test_monotonic_trend():
    s = [-2, -1, 0, 1, 2]
    up = monotonic_trend(s, [0.1, 0.2, 0.3, 0.35, 0.5])
    assert up.monotonic and up.sign == 1 and up.direction == "increasing"
    assert up.spearman == pytest.approx(1.0) and up.change == pytest.approx(0.4)
    down = monotonic_trend(s, [3, 2, 1, 0, -1])
    assert down.monotonic and down.direction == "decreasing"
    wiggle = monotonic_trend(s, [0.1, 0.3, 0.2, 0.4, 0.5])
    assert not wiggle.monotonic and wiggle.direction == "none" and 0 < wiggle.spearman < 1
    # a small reversal passes within the tolerance, a flat sequence never does
    assert monotonic_trend(s, [0.1, 0.3, 0.29, 0.4, 0.5], tolerance=0.02).monotonic
    assert not monotonic_trend(s, [0.2] * 5, tolerance=0.0).monotonic
    # a missing step (no face found) fails, but the measured steps still give a correlation
    gap = monotonic_trend(s, [0.1, None, 0.3, 0.4, 0.5])
    assert not gap.monotonic and gap.measured == 4 and gap.spearman == pytest.approx(1.0)
    none = monotonic_trend(s, [None] * 5)
    assert not none.monotonic and none.spearman is None and none.measured == 0
    # strengths are sorted with their values
    assert monotonic_trend([2, 0, 1], [3.0, 1.0, 2.0]).direction == "increasing"
    with pytest.raises(ValueError):
        monotonic_trend([0, 1], [1.0])
