"""The one image loader and writer: every odd file gives the right RGB array or a typed error."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from hypernst_cli.errors import ImageReadError, ImageTooLargeError, InputError, OutputError
from hypernst_cli.io import load_image, save_image
from hypernst_cli.io.atomic import TEMP_INFIX, atomic_path


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty") as e:
        load_image(p)
    assert str(p) in str(e.value)


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture\n")
    with pytest.raises(ImageReadError, match="not a readable image") as e:
        load_image(p)
    assert "notes.jpg" in e.value.one_line()


def test_truncated_png(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    p = tmp_path / "cut.png"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        load_image(p)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="folder"):
        load_image(tmp_path)


def test_one_pixel_image(tmp_path):
    p = _save(Image.new("RGB", (1, 1), (10, 20, 30)), tmp_path / "one.png")
    arr = load_image(p)
    assert arr.shape == (1, 1, 3) and arr.dtype == np.uint8
    assert arr[0, 0].tolist() == [10, 20, 30]


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    # Pure cyan+magenta+yellow=0, black=0 with C=0,M=255,Y=255 -> red.
    p = _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=100)
    arr = load_image(p)
    assert arr.shape == (16, 16, 3)
    r, g, b = arr[8, 8].astype(int)
    assert r > 230 and g < 30 and b < 30


def test_16bit_grayscale_png(tmp_path):
    values = np.array([[0, 65535], [32896, 257 * 100]], dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode.startswith("I")
    p = _save(img, tmp_path / "deep.png")
    arr = load_image(p)
    assert arr.shape == (2, 2, 3)
    assert arr[:, :, 0].tolist() == [[0, 255], [128, 100]]
    assert (arr[:, :, 0] == arr[:, :, 2]).all()


def test_16bit_rgb_png(tmp_path):
    cv2 = pytest.importorskip("cv2")
    bgr16 = np.zeros((4, 4, 3), dtype=np.uint16)
    bgr16[..., 2] = 65535  # red, in OpenCV's BGR order
    bgr16[..., 1] = 257 * 50
    p = tmp_path / "rgb48.png"
    assert cv2.imwrite(str(p), bgr16)
    arr = load_image(p)
    assert arr.shape == (4, 4, 3)
    assert arr[0, 0].tolist() == [255, 50, 0]


def test_palette_png_with_transparency_is_composited_on_white(tmp_path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    for x in range(4):
        for y in range(8):
            img.putpixel((x, y), 1)  # left half blue
    img.info["transparency"] = 0  # index 0 (red) is transparent
    p = _save(img, tmp_path / "pal.png", transparency=0)
    arr = load_image(p)
    assert arr[0, 0].tolist() == [0, 0, 255]
    assert arr[0, 7].tolist() == [255, 255, 255]


def test_rgba_and_la_are_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = [0, 0, 0, 255]
    rgba[0, 1] = [0, 0, 0, 0]
    p = _save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png")
    arr = load_image(p)
    assert arr[0, 0].tolist() == [0, 0, 0] and arr[0, 1].tolist() == [255, 255, 255]
    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], dtype=np.uint8), "LA")
    arr = load_image(_save(la, tmp_path / "la.png"))
    assert arr[0, 0].tolist() == [255, 255, 255] and arr[0, 1].tolist() == [0, 0, 0]


def test_grayscale_jpeg(tmp_path):
    arr = load_image(_save(Image.new("L", (5, 3), 77), tmp_path / "g.jpg"))
    assert arr.shape == (3, 5, 3) and abs(int(arr[1, 1, 0]) - 77) <= 1


def test_exif_rotated_jpeg(tmp_path):
    # Stored landscape 40x20 with the left half red; orientation 6 = rotate 90 degrees clockwise
    # for display, so the displayed image is portrait 20x40 with the red half on top.
    data = np.zeros((20, 40, 3), dtype=np.uint8)
    data[:, :20] = [255, 0, 0]
    data[:, 20:] = [0, 0, 255]
    img = Image.fromarray(data)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif.tobytes(), quality=100)
    arr = load_image(p)
    assert arr.shape == (40, 20, 3)
    assert arr[5, 10, 0] > 200 and arr[5, 10, 2] < 50  # top is red
    assert arr[35, 10, 2] > 200 and arr[35, 10, 0] < 50  # bottom is blue


def test_over_limit_image(tmp_path, monkeypatch):
    p = _save(Image.new("RGB", (20, 20)), tmp_path / "big.png")
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        load_image(p, max_pixels=100)
    monkeypatch.setenv("HYPERNST_MAX_PIXELS", "399")
    with pytest.raises(ImageTooLargeError):
        load_image(p)
    monkeypatch.setenv("HYPERNST_MAX_PIXELS", "400")
    assert load_image(p).shape == (20, 20, 3)


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    # A PNG header that claims 100000 x 100000 pixels, with no real data behind it.
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    p = tmp_path / "bomb.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.raises(ImageTooLargeError):
        load_image(p)


def test_save_roundtrip_and_format_from_suffix(tmp_path):
    arr = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    out = save_image(arr, tmp_path / "a" / "b" / "x.png")
    assert out.exists()
    assert Image.open(out).format == "PNG"
    assert (load_image(out) == arr).all()
    save_image(arr, tmp_path / "x.jpg")
    assert Image.open(tmp_path / "x.jpg").format == "JPEG"
    with pytest.raises(OutputError, match="suffix"):
        save_image(arr, tmp_path / "x.unknown")


def test_save_refuses_to_overwrite_an_input(tmp_path):
    p = _save(Image.new("RGB", (4, 4), (1, 2, 3)), tmp_path / "in.png")
    load_image(p)
    with pytest.raises(OutputError, match="overwrite an input"):
        save_image(np.zeros((4, 4, 3), np.uint8), p)
    assert load_image(p)[0, 0].tolist() == [1, 2, 3]


def test_failed_write_leaves_nothing(tmp_path):
    dest = tmp_path / "out.png"
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert not dest.exists()
    assert not [f for f in os.listdir(tmp_path) if TEMP_INFIX in f]


def test_contact_sheet_layout():
    from hypernst_cli.io.contact_sheet import contact_sheet

    red = np.zeros((10, 20, 3), np.uint8)
    red[..., 0] = 255
    sheet = contact_sheet([[red, None], [red, red]], cell=32, pad=2,
                          row_labels=["a", "b"], col_labels=["x", "y"])
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    h, w, _ = sheet.shape
    assert h > 2 * 32 and w > 2 * 32
    # The empty cell stays background; the others hold red pixels.
    assert (sheet == [255, 0, 0]).all(axis=2).sum() >= 3 * 32 * 16 * 0.9


def test_sweep_spares_live_writers_and_removes_dead_ones(tmp_path):
    import subprocess
    import sys

    from hypernst_cli.io.atomic import _HOST, sweep_temp_files

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    live = tmp_path / f".a{TEMP_INFIX}{_HOST}-{os.getpid()}-xyz.png"
    gone = tmp_path / f".b{TEMP_INFIX}{_HOST}-{dead}-xyz.png"
    old_style = tmp_path / f".c{TEMP_INFIX}xyz.png"
    foreign = tmp_path / f".d{TEMP_INFIX}otherhost-1-xyz.png"
    for p in (live, gone, old_style, foreign):
        p.write_bytes(b"x")
    assert sweep_temp_files(tmp_path) == 2
    assert live.exists() and foreign.exists()  # a concurrent writer, another machine's (recent)
    assert not gone.exists() and not old_style.exists()
    with atomic_path(tmp_path / "out.png") as tmp:
        assert _HOST in tmp.name and str(os.getpid()) in tmp.name
        tmp.write_bytes(b"ok")


def test_tensor_conversions_round_trip_in_both_ranges():
    from hypernst_cli.io.tensors import to_tensor, to_uint8

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    x = to_tensor(images)
    assert x.shape == (2, 3, 5, 7) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert float(to_tensor(np.full((2, 2, 3), 255, np.uint8), unit=True).max()) == 1.0
    assert float(to_tensor(np.zeros((2, 2, 3), np.uint8)).min()) == -1.0
    np.testing.assert_array_equal(to_uint8(x), images)
    np.testing.assert_array_equal(to_uint8(to_tensor(list(images), unit=True), unit=True), images)
    single = to_tensor(images[0])  # one image: a batch of one; [3, H, W] back to (H, W, 3)
    assert single.shape == (1, 3, 5, 7)
    np.testing.assert_array_equal(to_uint8(single[0]), images[0])
    assert to_uint8(x * 3).max() == 255 and to_uint8(x * 3).min() == 0  # clamped
    read_only = images[0].copy()
    read_only.flags.writeable = False
    to_tensor(read_only)[0, 0, 0, 0] = 5.0  # a copy: the array is untouched
    assert read_only[0, 0, 0] == images[0, 0, 0, 0]
