"""The paper's three facial regions (3.5.1) and their label values in region masks."""

from __future__ import annotations

BACKGROUND = 0
FACE = 1  # skin, eyes, eyebrows, nose, lips, ears: small parts are merged into the face
HAIR = 2

REGION_NAMES: tuple[str, ...] = ("background", "face", "hair")
REGION_IDS: dict[str, int] = {name: i for i, name in enumerate(REGION_NAMES)}

#: Colours for overlays people look at (RGB): background blue, face orange, hair green.
REGION_COLOURS: tuple[tuple[int, int, int], ...] = ((40, 90, 220), (245, 150, 40), (40, 190, 80))
