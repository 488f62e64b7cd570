"""dlib identity distance and face-detection rate on real faces (the `portraits` fixture)."""

from __future__ import annotations

import numpy as np
import pytest

from hypernst_cli.eval.identity import FaceAnalyser, FaceDetectionMetric, IdentityMetric
from hypernst_cli.faces.dlib_backend import dlib_model
from hypernst_cli.io import load_image


@pytest.fixture(scope="module")
def faces(portraits):
    # a real person, then two faces of the project's generator (dlib: another person, 0.66 away)
    names = ["astronaut.png", "face-1.png", "face-3.png"]
    return [load_image(portraits / "faces" / n) for n in names]


def _noisy(img: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def test_models_load_once_per_process():
    from hypernst_cli.faces.processor import FaceProcessor

    a, b = FaceAnalyser.shared(), FaceAnalyser.shared()
    assert a is b
    # the metrics and the face processor use the same dlib models
    assert all(x is y for x, y in zip(a.load(), FaceAnalyser().load(), strict=True))
    processor = FaceProcessor(backend="dlib").dlib
    assert a.load()[0] is dlib_model("hog_detector") is processor.detector
    assert processor.predictor is dlib_model("landmarks68") is FaceProcessor(backend="dlib").dlib.predictor
    assert IdentityMetric().faces is a and FaceDetectionMetric().faces is a


def test_identity_zero_for_same_image_and_grows_with_noise(faces):
    metric = IdentityMetric()
    face = faces[0]
    assert metric(face, face) == pytest.approx(0.0, abs=1e-9)
    values = [metric(face, _noisy(face, s)) for s in (8, 24, 48)]
    assert all(v is not None for v in values), values
    assert values[0] < 0.2 and values[0] < values[1] < values[2], values
    # another person is further than the same person under mild noise
    other = metric(face, faces[1])
    assert other is not None and other > 0.6 > values[0]


def test_no_face_is_na_and_counted_by_the_detection_rate(faces):
    identity, detected = IdentityMetric(), FaceDetectionMetric()
    blank = np.full((256, 256, 3), 127, np.uint8)
    assert identity(faces[0], blank) is None
    assert detected(faces[0], blank) == 0.0
    assert detected(faces[0], faces[2]) == 1.0
    rows = [
        {"identity": identity(faces[0], faces[0]), "face_detected": 1.0},
        {"identity": identity(faces[0], faces[1]), "face_detected": 1.0},
        {"identity": None, "face_detected": 0.0},
    ]
    s = identity.summarize(rows)
    assert s["identity_same_pct"] == pytest.approx(100 / 3)  # over all pairs: no face is no match
    assert s["identity"] == pytest.approx((rows[0]["identity"] + rows[1]["identity"]) / 2)
    assert detected.summarize(rows)["face_detected"] == pytest.approx(200 / 3)


def test_results_are_cached_per_image(faces):
    dlib_faces = FaceAnalyser()
    first = dlib_faces.analyse(faces[0])
    assert dlib_faces.analyse(faces[0].copy()) is first
    assert first.n_faces == 1 and first.descriptor.shape == (128,)
