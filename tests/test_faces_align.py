"""Face detection and FFHQ alignment: geometry on synthetic data, then real photos and faces
(tests/portraits.py: what the repository and scikit-image carry)."""

from __future__ import annotations

import numpy as np
import pytest

from hypernst_cli.errors import NoFaceError, UsageError
from hypernst_cli.faces.alignment import ffhq_quad, key_points, quad_to_transform, template_points, warp_to_crop
from hypernst_cli.faces.types import AlignedFace, apply_transform


def _five(eye_l, eye_r, mouth_l, mouth_r):
    nose = ((np.array(eye_l) + eye_r) / 2 + (np.array(mouth_l) + mouth_r) / 2) / 2
    return np.array([eye_l, eye_r, nose, mouth_l, mouth_r], dtype=float)


# --- geometry (no data needed) -----------------------------------------------------------------


def test_quad_follows_the_ffhq_formula_for_a_level_face():
    # eyes 40 px apart, mouth 40 px below: the eye distance rule wins (2 * 40 > 1.8 * 40)
    lm = _five((80, 100), (120, 100), (90, 140), (110, 140))
    quad = ffhq_quad(lm)
    c = np.array([100.0, 100.0 + 0.1 * 40])
    half = 2.0 * 40  # |x| = max(2 * eye_to_eye, 1.8 * eye_to_mouth)
    expected = np.array([c + (-half, -half), c + (-half, half), c + (half, half), c + (half, -half)])
    np.testing.assert_allclose(quad, expected, atol=1e-9)


def test_quad_uses_eye_to_mouth_for_long_faces_and_follows_rotation():
    lm = _five((80, 100), (120, 100), (90, 170), (110, 170))  # eye-to-mouth 70 > eye distance
    quad = ffhq_quad(lm)
    side = np.hypot(*(quad[3] - quad[0]))
    assert side == pytest.approx(2 * 1.8 * 70)
    # rotating the landmarks rotates the quad the same way
    theta = np.deg2rad(30)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    np.testing.assert_allclose(ffhq_quad(lm @ rot.T), quad @ rot.T, atol=1e-9)


def test_68_point_key_points_are_eye_means_and_mouth_corners():
    lm = np.zeros((68, 2))
    lm[36:42] = [10, 20]
    lm[42:48] = [30, 20]
    lm[48] = [12, 40]
    lm[54] = [28, 44]
    eye_l, eye_r, mouth = key_points(lm)
    np.testing.assert_allclose([eye_l, eye_r, mouth], [[10, 20], [30, 20], [20, 42]])
    with pytest.raises(ValueError):
        key_points(np.zeros((10, 2)))


def test_warp_of_an_axis_aligned_quad_is_a_plain_crop():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (200, 220, 3), dtype=np.uint8)
    # quad corners are pixel edges: this one covers pixels 20..119 x 30..129 exactly
    quad = np.array([[19.5, 29.5], [19.5, 129.5], [119.5, 129.5], [119.5, 29.5]])
    crop, transform = warp_to_crop(img, quad, 100)
    np.testing.assert_array_equal(crop, img[30:130, 20:120])
    np.testing.assert_allclose(apply_transform(transform, [[0, 0], [99, 99]]), [[20, 30], [119, 129]])


def test_warp_downscale_is_antialiased_and_consistent():
    # a fine checkerboard shrunk 4x must average to grey, not alias into stripes
    yy, xx = np.mgrid[0:400, 0:400]
    img = np.repeat((((xx + yy) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)
    quad = np.array([[-0.5, -0.5], [-0.5, 399.5], [399.5, 399.5], [399.5, -0.5]])
    crop, _ = warp_to_crop(img, quad, 100)
    assert abs(float(crop.mean()) - 127.5) < 3 and crop.std() < 10


def test_quad_outside_the_image_is_reflect_padded():
    img = np.full((100, 100, 3), 200, np.uint8)
    img[:, :50] = 100  # two flat halves
    quad = np.array([[-60.0, -60.0], [-60.0, 160.0], [160.0, 160.0], [160.0, -60.0]])
    crop, _ = warp_to_crop(img, quad, 64)
    assert crop.min() >= 90  # no black border anywhere
    # inside the image the content is kept: source x = 25 and 75 fall on crop x = 24 and 39
    assert abs(int(crop[31, 24, 0]) - 100) < 10 and abs(int(crop[31, 39, 0]) - 200) < 10
    # far out, the mirrored border has faded towards the median colour
    assert 100 < int(crop[31, 1, 0]) < 200


def test_transform_for_other_sizes_maps_the_same_points():
    quad = np.array([[10.0, 20.0], [0.0, 120.0], [100.0, 130.0], [110.0, 30.0]])
    m = quad_to_transform(quad, 64)
    face = AlignedFace(
        image=np.zeros((64, 64, 3), np.uint8), landmarks=np.zeros((5, 2)),
        landmarks_original=np.zeros((5, 2)), box=np.zeros(4), quad=quad, transform=m,
        source_shape=(200, 200),
    )
    # the centre of the crop and its outer corner edge are size-independent
    for size in (32, 64, 1024):
        centre = face.to_source([[(size - 1) / 2, (size - 1) / 2]], size)
        np.testing.assert_allclose(centre, [quad.mean(axis=0)], atol=1e-9)
        corner = face.to_source([[-0.5, -0.5]], size)
        np.testing.assert_allclose(corner, [quad[0]], atol=1e-9)
    np.testing.assert_allclose(face.to_crop(face.to_source([[3.0, 7.0]])), [[3.0, 7.0]], atol=1e-9)


def test_processor_rejects_bad_options():
    from hypernst_cli.faces import FaceProcessor

    with pytest.raises(UsageError):
        FaceProcessor(backend="magic")
    with pytest.raises(UsageError):
        FaceProcessor(backend="dlib", detector="sift")


def test_no_face_in_a_gradient_is_a_typed_error():
    from hypernst_cli.faces import FaceProcessor

    fp = FaceProcessor(backend="dlib")
    gradient = np.repeat(np.linspace(0, 255, 300, dtype=np.uint8)[None, :, None], 3, axis=2)
    gradient = np.repeat(gradient, 200, axis=0)
    assert fp.detect(gradient) == []
    with pytest.raises(NoFaceError):
        fp.align_largest(gradient, 64)
    with pytest.raises(NoFaceError):
        fp.parse_image(gradient)
    # errors name the file the image came from, when the caller says it
    for call in (fp.align_largest, fp.align_all):
        with pytest.raises(NoFaceError, match=r"^photos/g\.png: no face found") as exc:
            call(gradient, 64, source="photos/g.png")
        assert str(exc.value.path) == "photos/g.png"
    with pytest.raises(NoFaceError, match=r"^g\.png: no face"):
        fp.parse_image(gradient, source="g.png")


# --- real photos (the `portraits` fixture) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def processor():
    from hypernst_cli.faces import FaceProcessor

    return FaceProcessor(backend="dlib")


@pytest.fixture(scope="module")
def photos(portraits, processor):
    """Each photo with its detections (cached for the module: detection is the slow part)."""
    from hypernst_cli.io import load_image

    out = {}
    for path in sorted((portraits / "photos").iterdir()):
        image = load_image(path)
        out[path.name] = (image, processor.detect(image))
    return out


def test_each_photo_has_one_face(photos):
    assert len(photos) == 3
    for name, (_, faces) in photos.items():
        assert len(faces) == 1, name
        assert faces[0].landmarks.shape == (68, 2)


def test_aligned_photos_match_the_ffhq_template(photos, processor):
    size = 256
    template = template_points(size)
    for name, (image, faces) in photos.items():
        aligned = processor.align(image, faces[0], size)
        assert aligned.image.shape == (size, size, 3) and aligned.image.dtype == np.uint8
        # the landmarks carried into the crop and mapped back agree with the source
        np.testing.assert_allclose(aligned.to_source(aligned.landmarks), faces[0].landmarks, atol=1e-6)
        redetected = processor.detect(aligned.image)
        assert len(redetected) == 1, name
        found = np.array(key_points(redetected[0].landmarks))
        error = np.hypot(*(found - template).T) / size  # per point: left eye, right eye, mouth
        assert error[:2].max() < 0.03, (name, error)
        # FFHQ's own rule puts the mouth lower on long faces (up to 0.75 of the height, as in FFHQ
        # itself); on average the three points stay within 3 %
        assert error.mean() < 0.03 and error[2] < 0.045, (name, error)
        # and the re-detected points are where the crop's transform says they are
        expected = np.array(key_points(aligned.landmarks))
        assert np.abs(found - expected).max() / size < 0.015, name


def test_aligned_faces_realign_to_themselves(portraits, processor):
    from hypernst_cli.io import load_image

    for path in sorted((portraits / "faces").glob("*.png")):
        image = load_image(path)
        aligned = processor.align_largest(image, image.shape[0])
        before = np.array(key_points(aligned.landmarks_original))[:2]
        after = np.array(key_points(aligned.landmarks))[:2]
        assert np.abs(after - before).max() / image.shape[0] < 0.03, path.name


def test_grayscale_photo_aligns_like_the_colour_one(photos, processor):
    image, faces = photos["astronaut.jpg"]
    gray = np.asarray(image.mean(axis=2), dtype=np.uint8)  # (H, W): the processor takes 2-D too
    found = processor.detect(gray)
    assert len(found) == 1
    aligned = processor.align(gray, found[0], 128)
    assert aligned.image.shape == (128, 128, 3)
    reference = ffhq_quad(faces[0].landmarks)
    qsize = np.hypot(*(reference[3] - reference[0]))
    assert np.abs(aligned.quad - reference).max() < 0.03 * qsize


def test_exif_rotated_photo_is_aligned_upright(tmp_path, photos, processor):
    from PIL import Image

    from hypernst_cli.io import load_image

    image, faces = photos["face-2-scene.jpg"]
    # store the pixels turned a quarter, with the EXIF tag that says how to turn them back
    stored = Image.fromarray(image).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.shape == image.shape
    aligned = processor.align_largest(loaded, 128)
    reference = ffhq_quad(faces[0].landmarks)
    qsize = np.hypot(*(reference[3] - reference[0]))
    assert np.abs(aligned.quad - reference).max() < 0.03 * qsize


def two_faces(photos):
    """Two photos side by side (the shorter one padded below), the face on the left larger."""
    a, _ = photos["face-1-scene.jpg"]
    b, _ = photos["astronaut.jpg"]
    h = max(a.shape[0], b.shape[0])
    a, b = (np.pad(x, ((0, h - x.shape[0]), (0, 0), (0, 0)), constant_values=128) for x in (a, b))
    return np.concatenate([a, b], axis=1)


def test_two_faces_largest_first(photos, processor):
    image = two_faces(photos)
    faces = processor.detect(image)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert faces[0].box[0] < image.shape[1] / 2 < faces[1].box[0]  # the left face is the larger
    every = processor.align_all(image, 64)
    assert [f.index for f in every] == [0, 1]
    largest = processor.align_largest(image, 64)
    np.testing.assert_allclose(largest.quad, every[0].quad)


@pytest.mark.parametrize("tall", [True, False])
def test_a_face_in_a_long_strip_is_found(processor, tall):
    """A long scan or panorama: the detector's copy is bounded by area, not by the longest
    side, so a face that the strip's length would shrink below the detector's reach is found."""
    from skimage.data import astronaut

    face = astronaut()  # 512 px, the face about 180 px across
    side = face.shape[0]
    height, width = (8 * side, side) if tall else (side, 8 * side)
    strip = np.full((height, width, 3), 200, np.uint8)
    y, x = (height - side) // 2, (width - side) // 2
    strip[y:y + side, x:x + side] = face
    found = processor.detect(strip)
    assert len(found) == 1
    left, top, right, bottom = found[0].box
    assert x <= (left + right) / 2 <= x + side and y <= (top + bottom) / 2 <= y + side


def test_detection_copy_is_bounded_by_area():
    from hypernst_cli.faces.types import detection_scale

    assert detection_scale(300, 200, 640) == 1.0  # never enlarged
    assert detection_scale(1280, 1280, 640) == pytest.approx(0.5)
    assert detection_scale(512, 4096, 640) == pytest.approx(640 / np.sqrt(512 * 4096))
