"""Real photos for the tests, carried by the repository or by a test dependency (no ../shared).

Sources:

- ``skimage.data.astronaut()``: a public-domain NASA portrait photograph (Eileen Collins), in
  scikit-image's wheel: the one real photo of a real person;
- ``examples/content/face-*.png``: the project's example faces, drawn by its own small
  generator, FFHQ-aligned at 512 px (dlib finds a face in each);
- ``examples/styles/*.png`` and other pictures from scikit-image (coffee, a cat, a rocket, ...):
  styles.

``build_portraits(root)`` derives, in the layout of ../shared/data:

- ``faces/``: FFHQ-aligned 256 px faces: ``astronaut.png`` (aligned by hypernst), ``face-1..3.png``
  and the mirror images ``astronaut-mirror.png``, ``face-1-mirror.png`` (6);
- ``photos/``: unaligned photos with one face each (3): ``astronaut.jpg`` (the photograph's upper
  part, enlarged: the whole one holds a second, faint false detection), ``face-1-scene.jpg`` (a face turned a little, small, off-centre on a landscape picture),
  ``face-2-scene.jpg`` (a face low on a tall picture);
- ``styles/``: the example styles, scikit-image pictures cropped to 256 px squares (10: one of
  them, poster-portrait, holds a face), and the faces painted (posterised, drawn in pencil,
  duotone), art portraits whose face dlib finds (``FACE_STYLES``, 7);
- ``utkface/``: UTKFace-like crops (200 px JPEG named ``AGE_GENDER_RACE_STAMP.jpg.chip.jpg``): the
  faces above with varied crops, tone and mirror, and made-up ages; dlib finds a face in
  each (24).

Everything takes a few seconds and is cached for the session by the ``portraits`` fixture.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

#: the faces/ file names, in the order of ``sorted()``
FACES = ["astronaut-mirror.png", "astronaut.png", "face-1-mirror.png", "face-1.png", "face-2.png",
         "face-3.png"]
PHOTOS = ["astronaut.jpg", "face-1-scene.jpg", "face-2-scene.jpg"]
#: scikit-image pictures used as styles (all in its wheel: nothing is downloaded)
SKIMAGE_STYLES = ("coffee", "chelsea", "rocket", "hubble_deep_field")


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photograph, (512, 512, 3) uint8."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def example_face(i: int, size: int = 256) -> np.ndarray:
    img = Image.open(EXAMPLES / "content" / f"face-{i}.png").convert("RGB")
    return np.asarray(img.resize((size, size), Image.Resampling.LANCZOS))


def _square(image: np.ndarray, size: int = 256) -> np.ndarray:
    pil = Image.fromarray(image).convert("RGB")
    return np.asarray(ImageOps.fit(pil, (size, size), Image.Resampling.LANCZOS))


def _scene(face: np.ndarray, background: np.ndarray, canvas_wh: tuple[int, int], scale: float,
           angle: float, top_left: tuple[int, int]) -> np.ndarray:
    """``face`` turned by ``angle`` degrees, scaled and pasted at ``top_left`` onto
    ``background`` resized to ``canvas_wh``: an unaligned photo with one face."""
    pil = Image.fromarray(face).rotate(angle, resample=Image.Resampling.BICUBIC,
                                       fillcolor=(128, 128, 128))
    pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.Resampling.LANCZOS)
    canvas = Image.fromarray(background).convert("RGB").resize(canvas_wh, Image.Resampling.LANCZOS)
    canvas.paste(pil, top_left)
    return np.asarray(canvas)


def _painted(face: np.ndarray) -> np.ndarray:
    """A poster version of a face: smoothed, few colours, shifted hues."""
    pil = Image.fromarray(face).filter(ImageFilter.ModeFilter(5))
    pil = ImageOps.posterize(pil, 2)
    return np.asarray(pil)[..., ::-1].copy()


def _pencil(face: np.ndarray) -> np.ndarray:
    grey = Image.fromarray(face).convert("L")
    edges = ImageOps.invert(grey.filter(ImageFilter.FIND_EDGES))
    return np.asarray(Image.merge("RGB", [ImageOps.autocontrast(edges)] * 3))


def _duotone(face: np.ndarray) -> np.ndarray:
    grey = Image.fromarray(face).convert("L")
    return np.asarray(ImageOps.colorize(grey, black=(40, 10, 90), white=(255, 220, 120)))


#: styles painted from the faces above (dlib finds the face in each: art portraits)
FACE_STYLES = {
    "painted-face-2": _painted, "painted-astronaut": _painted, "painted-face-3": _painted,
    "pencil-astronaut": _pencil, "duotone-face-1": _duotone, "duotone-face-3": _duotone,
    "duotone-astronaut-mirror": _duotone,
}


def build_portraits(root: Path) -> Path:
    """Write faces/, photos/, styles/ and utkface/ under ``root`` (see the module docstring)."""
    from skimage import data

    from hypernst_cli.faces import FaceProcessor

    root = Path(root)
    for sub in ("faces", "photos", "styles", "utkface"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    photo = astronaut()
    processor = FaceProcessor(backend="dlib")
    aligned = processor.align_largest(photo, 256).image
    faces = {"astronaut": aligned, **{f"face-{i}": example_face(i) for i in (1, 2, 3)}}
    faces["astronaut-mirror"] = aligned[:, ::-1]
    faces["face-1-mirror"] = faces["face-1"][:, ::-1]
    for name, img in faces.items():
        Image.fromarray(np.ascontiguousarray(img)).save(root / "faces" / f"{name}.png")
    assert sorted(p.name for p in (root / "faces").iterdir()) == FACES

    big = {i: example_face(i, 512) for i in (1, 2)}
    upper = Image.fromarray(photo[:320, 60:380]).resize((640, 640), Image.Resampling.LANCZOS)
    upper.save(root / "photos" / "astronaut.jpg", quality=95)
    Image.fromarray(_scene(big[1], data.coffee(), (640, 480), 0.7, 8, (300, 60))).save(
        root / "photos" / "face-1-scene.jpg", quality=95)
    Image.fromarray(_scene(big[2], data.rocket(), (600, 800), 0.6, -6, (40, 400))).save(
        root / "photos" / "face-2-scene.jpg", quality=95)

    for path in sorted((EXAMPLES / "styles").glob("*.png")):
        Image.fromarray(_square(np.asarray(Image.open(path).convert("RGB")))).save(
            root / "styles" / path.name)
    for name in SKIMAGE_STYLES:
        Image.fromarray(_square(getattr(data, name)())).save(root / "styles" / f"{name}.png")
    for name, make in FACE_STYLES.items():
        kind, face = name.split("-", 1)
        Image.fromarray(make(faces[face])).save(root / "styles" / f"{name}.png")

    rng = np.random.default_rng(0)
    names = list(faces)
    k = 0
    while k < 24:
        base = faces[names[k % len(names)]]
        pad = int(rng.integers(20, 44))  # UTKFace crops are tighter than FFHQ's
        crop = base[pad:256 - pad // 2, pad // 2 + pad // 4: 256 - pad // 2 - pad // 4]
        gain = float(rng.uniform(0.8, 1.2))
        img = np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        if k % 3 == 1:
            img = img[:, ::-1]
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img)).resize((200, 200), Image.Resampling.LANCZOS).save(
            buf, format="JPEG", quality=92)
        if not processor.detect(np.asarray(Image.open(buf))):
            continue  # like UTKFace's own crops, every one shows a face dlib finds: draw again
        age, gender, race = int(rng.integers(1, 90)), k % 2, k % 5
        (root / "utkface" / f"{age}_{gender}_{race}_20170{k:03d}.jpg.chip.jpg").write_bytes(
            buf.getvalue())
        k += 1
    return root
