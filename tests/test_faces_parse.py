"""3-region parsing (landmark + GrabCut method; the facexlib glue with random-init networks) and
paste-back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hypernst_cli.errors import NoFaceError, WeightsNotFoundError
from hypernst_cli.faces import facexlib_backend as fx
from hypernst_cli.faces.regions import BACKGROUND, FACE, HAIR

# --- facexlib glue (no weights needed) ------------------------------------------------------------


def test_bisenet_and_parsenet_classes_map_to_the_three_regions():
    for kind, classes in (("bisenet", fx.BISENET_CLASSES), ("parsenet", fx.PARSENET_CLASSES)):
        assert len(classes) == 19 and len(set(classes)) == 19
        # logits that pick class c in column c
        logits = np.zeros((19, 4, 19), np.float32)
        for c in range(19):
            logits[c, :, c] = 5.0
        regions = fx.logits_to_regions(logits, kind, (4, 19))
        got = {classes[c]: int(regions[0, c]) for c in range(19)}
        assert got["hair"] == HAIR and got["hat"] == HAIR
        for part in ("skin", "nose", "l_eye", "r_brow", "u_lip", "l_lip", "mouth", "l_ear"):
            assert got[part] == FACE, (kind, part)
        for part in ("background", "neck", "cloth", "neck_l"):
            assert got[part] == BACKGROUND, (kind, part)
    # the two networks order their classes differently: index 2 is a brow for one, the nose for the other
    assert fx.BISENET_CLASSES[13] == "l_lip" and fx.PARSENET_CLASSES[13] == "hair"
    big = fx.logits_to_regions(np.eye(19, dtype=np.float32)[17][:, None, None] * np.ones((19, 2, 2)), "bisenet", (8, 8))
    assert big.shape == (8, 8) and (big == HAIR).all()


def test_retinaface_rows_become_faces_in_source_coordinates():
    rows = np.array([
        [10, 10, 30, 30, 0.95, 15, 18, 25, 18, 20, 22, 16, 26, 24, 26],
        [40, 40, 100, 110, 0.90, 55, 65, 85, 65, 70, 80, 60, 95, 80, 95],
    ], dtype=np.float32)
    faces = fx.retinaface_rows_to_faces(rows, scale=2.0)
    assert len(faces) == 2
    big, small = faces
    assert big.score == pytest.approx(0.90) and small.score == pytest.approx(0.95)  # sorted by area
    np.testing.assert_allclose(big.box, (rows[1, :4] + 0.5) * 2 - 0.5)
    assert big.landmarks.shape == (5, 2)
    np.testing.assert_allclose(big.landmarks[0], (np.array([55, 65]) + 0.5) * 2 - 0.5)
    assert fx.retinaface_rows_to_faces(np.zeros((0, 15))) == []


def test_random_init_networks_run_through_the_glue(monkeypatch, tmp_path):
    import torch

    torch.manual_seed(0)
    # a local weights file standing in for the downloaded one: loaded strictly, as the real one is
    model = fx.build_parser("bisenet", "cpu")
    weights = tmp_path / "parsing_bisenet.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, weights)
    monkeypatch.setattr(fx, "weights_path", lambda name: weights if "parsing" in name else None)
    faces = fx.FacexlibFaces("cpu", "bisenet")
    labels = faces.parse(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    assert labels.shape == (48, 40) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {BACKGROUND, FACE, HAIR}
    # detection weights are absent: a typed error that says how to get them
    with pytest.raises(WeightsNotFoundError) as err:
        faces.detect(np.zeros((32, 32, 3), np.uint8))
    assert "hypernst download facexlib-detection-retinaface-resnet50" in err.value.one_line()


def test_retinaface_detect_uses_the_network_output(monkeypatch):
    import torch

    torch.manual_seed(0)
    net = fx.build_retinaface("cpu")  # random init: real forward, real decoding
    with torch.no_grad():
        rows = net.detect_faces(np.zeros((64, 64, 3), np.float32), conf_threshold=0.0)
    assert rows.ndim == 2 and rows.shape[1] == 15
    faces = fx.FacexlibFaces("cpu")
    faces._detector = net
    fixed = np.array([[100, 50, 300, 300, 0.99, 150, 150, 250, 150, 200, 200, 160, 250, 240, 250]], np.float32)
    seen = {}

    def fake(bgr, conf_threshold):
        seen["shape"] = bgr.shape
        return fixed

    monkeypatch.setattr(net, "detect_faces", fake)
    found = faces.detect(np.zeros((1280, 1280, 3), np.uint8))
    assert seen["shape"] == (640, 640, 3)  # detected on a half-size copy ...
    np.testing.assert_allclose(found[0].box, (fixed[0, :4] + 0.5) * 2 - 0.5)  # ... mapped back
    faces.detect(np.zeros((512, 4096, 3), np.uint8))  # a long strip: bounded by area, not length
    assert seen["shape"] == (226, 1810, 3)


def test_facexlib_backend_without_weights_says_how_to_download(monkeypatch, run_cli, tmp_path):
    from hypernst_cli.faces import FaceProcessor

    monkeypatch.setattr(fx, "weights_path", lambda name: None)
    with pytest.raises(WeightsNotFoundError) as err:
        FaceProcessor(backend="facexlib")
    assert "hypernst download facexlib-" in err.value.one_line()
    assert FaceProcessor(backend="auto").backend == "dlib"
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    r = run_cli("align", img, "-o", tmp_path / "out", "--backend", "facexlib")
    assert r.exit_code == 3 and "hypernst download facexlib-" in r.stderr


def test_parser_id_names_the_parser_that_runs(monkeypatch, tmp_path):
    """Style codes are cached under the parser's name: facexlib detecting without its parsing
    weights parses with the landmarks, and its codes must not be filed as bisenet's."""
    from hypernst_cli.faces import FaceProcessor

    present = {"detection"}
    monkeypatch.setattr(fx, "weights_path", lambda name: tmp_path / name
                        if any(kind in name for kind in present) else None)
    assert FaceProcessor(backend="facexlib").parser_id == "facexlib-landmarks-2"
    present.add("parsing")
    assert FaceProcessor(backend="facexlib").parser_id == "facexlib-bisenet"
    assert FaceProcessor(backend="dlib").parser_id == "dlib-landmarks-2"


def test_corrupt_weights_are_an_integrity_error(tmp_path):
    from hypernst_cli.errors import WeightsIntegrityError

    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsIntegrityError):
        fx.build_parser("parsenet", "cpu", bad)


# --- landmark parsing on real faces and styles (the `portraits` fixture) ------------------------------------------------


@pytest.fixture(scope="module")
def processor():
    from hypernst_cli.faces import FaceProcessor

    return FaceProcessor(backend="dlib")


@pytest.fixture(scope="module")
def parsed_faces(portraits, processor):
    from hypernst_cli.io import load_image

    out = []
    for path in sorted((portraits / "faces").glob("*.png")):
        image = load_image(path)
        face = processor.detect(image)[0]
        out.append((path.name, image, face.landmarks, processor.parse_image(image)))
    return out


def test_face_masks_cover_the_face_show_hair_and_leave_background(parsed_faces):
    assert len(parsed_faces) == 6
    for name, image, landmarks, labels in parsed_faces:
        assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
        assert set(np.unique(labels)) <= {BACKGROUND, FACE, HAIR}
        hull = np.zeros(labels.shape, np.uint8)
        cv2.fillConvexPoly(hull, np.round(cv2.convexHull(landmarks[17:68].astype(np.float32))).astype(np.int32), 1)
        inner = hull.astype(bool)
        assert (labels[inner] == FACE).mean() >= 0.90, name
        # every one of these people shows some hair
        assert (labels == HAIR).mean() > 0.02, name
        border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        assert (border == BACKGROUND).any(), name
        assert (labels == BACKGROUND).mean() > 0.1, name


def test_aligned_crop_parse_matches_image_parse(parsed_faces, processor):
    name, image, _, labels = parsed_faces[0]
    aligned = processor.align_largest(image, 128)
    crop_labels = processor.parse(aligned)
    assert crop_labels.shape == (128, 128)
    small = cv2.resize(labels, (128, 128), interpolation=cv2.INTER_NEAREST)
    assert (crop_labels == small).mean() > 0.85, name


def test_style_portraits_parse_or_raise_no_face(portraits, processor):
    from hypernst_cli.io import load_image

    picked = [portraits / "styles" / f"{name}.png" for name in
              ("poster-portrait", "painted-face-2", "pencil-astronaut", "coffee", "waves")]
    parsed = 0
    for path in picked:
        image = load_image(path)
        try:
            labels = processor.parse_image(image)
        except NoFaceError:
            continue
        parsed += 1
        assert labels.shape == image.shape[:2]
        assert (labels == FACE).mean() > 0.05, path.name
    assert parsed >= len(picked) // 2


def test_parse_a_photo_in_its_own_coordinates(portraits, processor):
    from hypernst_cli.io import load_image

    image = load_image(portraits / "photos" / "astronaut.jpg")
    labels = processor.parse_image(image)
    assert labels.shape == image.shape[:2]
    face = processor.detect(image)[0]
    x, y = np.round(face.landmarks[30]).astype(int)  # the nose tip is face
    assert labels[y, x] == FACE
    assert labels[5, 5] == BACKGROUND and (labels == HAIR).mean() > 0.05


# --- paste-back ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_face(portraits, processor):
    from hypernst_cli.io import load_image

    image = load_image(portraits / "photos" / "astronaut.jpg")
    return image, processor.detect(image)[0]


def test_paste_back_of_the_unchanged_crop_reproduces_the_photo(photo_face, processor):
    image, face = photo_face
    quad = processor.align(image, face, 64).quad
    qsize = int(round(np.hypot(*(quad[3] - quad[0]))))
    aligned = processor.align(image, face, qsize)  # about one crop pixel per photo pixel
    out = processor.paste_back(image, aligned.image, aligned)
    assert out.shape == image.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - image.astype(int)).max(axis=2)
    # inside the face: close (only resampling differences)
    hull = np.zeros(diff.shape, np.uint8)
    cv2.fillConvexPoly(hull, np.round(cv2.convexHull(face.landmarks.astype(np.float32))).astype(np.int32), 1)
    assert diff[hull.astype(bool)].mean() < 3.0
    # outside the quad (the mask is zero there): exactly the original
    inside = np.zeros(diff.shape, np.uint8)
    cv2.fillConvexPoly(inside, np.round(quad).astype(np.int32), 1)
    inside = cv2.dilate(inside, np.ones((5, 5), np.uint8)).astype(bool)
    assert diff[~inside].max() == 0
    assert (diff > 0).any()


def test_paste_back_scales_to_any_crop_size_and_respects_regions(photo_face, processor):
    image, face = photo_face
    aligned = processor.align(image, face, 128)
    red = np.zeros((512, 512, 3), np.uint8)
    red[..., 0] = 255
    out = processor.paste_back(image, red, aligned)
    x, y = np.round(face.landmarks[30]).astype(int)
    assert tuple(out[y, x]) == (255, 0, 0)
    np.testing.assert_array_equal(out[:20, :20], image[:20, :20])
    # with a region mask only face and hair (shrunk by the feather) are pasted
    regions = np.zeros((128, 128), np.uint8)
    regions[28:100, 28:100] = FACE
    out = processor.paste_back(image, red, aligned, regions=regions)
    assert np.abs(out[y, x].astype(int) - (255, 0, 0)).max() <= 3
    corner = np.round(aligned.to_source([[12, 12]])[0]).astype(int)  # background corner of the crop
    np.testing.assert_array_equal(out[corner[1], corner[0]], image[corner[1], corner[0]])


def test_region_mask_feathers_inside_the_head():
    """The feather falls on the head's own side of its edge: just outside the face and hair
    the weight is small (no halo of the stylized crop's background), deep inside it is 1."""
    from hypernst_cli.faces.paste import crop_mask

    regions = np.full((128, 128), BACKGROUND, np.uint8)
    regions[28:100, 28:100] = FACE
    mask = crop_mask(128, 0.04, regions)
    assert mask[64, 64] > 0.99
    assert mask[64, 27] < 0.2 and mask[27, 64] < 0.2  # one pixel outside the head
    assert mask[64, 28] < 0.5  # the edge itself is already mostly the photo


def test_paste_back_checks_sizes(photo_face, processor):
    image, face = photo_face
    aligned = processor.align(image, face, 64)
    with pytest.raises(ValueError):
        processor.paste_back(image[:100], aligned.image, aligned)
    with pytest.raises(ValueError):
        processor.paste_back(image, aligned.image[:, :60], aligned)


def test_a_face_parses_the_same_whatever_was_parsed_before(parsed_faces, processor):
    # GrabCut draws on OpenCV's global RNG: a mask must not depend on the images parsed earlier
    # in the process (a cached style image used to change the content's mask, and the output)
    from hypernst_cli.faces.parsing import parse_with_landmarks

    _, image, landmarks, _ = parsed_faces[1]
    masks = []
    for _, other, other_landmarks, _ in parsed_faces[2:]:
        parse_with_landmarks(other, other_landmarks)
        masks.append(parse_with_landmarks(image, landmarks))
    assert all(np.array_equal(mask, masks[0]) for mask in masks[1:])
