"""Image features computed with Pillow and numpy: colour, coarse layout and edge directions.

Each image becomes one fixed-length vector of `IMAGE_FEATURES` floats:

- colour: an 8-bin histogram per RGB channel, and a 12-bin hue histogram weighted by saturation
  (what colour the object is, wherever it is);
- layout: the grey image downsampled to 12 x 12 (where dark and light are);
- shape: histograms of gradient orientation (9 unsigned bins over 180 degrees, weighted by the
  gradient's magnitude) for the whole image and for each cell of a 3 x 3 grid, a small HOG
  (Dalal & Triggs 2005) that tells straight edges at 0/90 degrees (squares) from ones at 60/120
  (triangles) from all directions at once (circles); and the share of strong-edge pixels.

Images are decoded at a reduced size (`draft` for JPEG) and resized to 64 x 64 first, so a
feature costs about a millisecond whatever the upload's resolution.
"""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image

SIZE = 64
GRID = 3
ORIENTATIONS = 9
IMAGE_FEATURES = 3 * 8 + 12 + 12 * 12 + ORIENTATIONS * (1 + GRID * GRID) + 1
# Bump whenever `image_features` changes: cached vectors of another version are recomputed.
FEATURES_VERSION = 1


def _orientation_histogram(angle: NDArray[np.float64], weight: NDArray[np.float64]) -> NDArray:
    bins = np.minimum((angle / np.pi * ORIENTATIONS).astype(int), ORIENTATIONS - 1)
    hist = np.bincount(bins.ravel(), weights=weight.ravel(), minlength=ORIENTATIONS)
    total = hist.sum()
    return hist / total if total > 0 else hist


def image_features(data: bytes) -> NDArray[np.float64]:
    """The feature vector of one encoded image (any format Pillow reads)."""
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (2 * SIZE, 2 * SIZE))
        rgb = img.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    pixels = np.asarray(rgb, dtype=np.float64) / 255.0
    hsv = np.asarray(rgb.convert("HSV"), dtype=np.float64) / 255.0
    colour = [np.histogram(pixels[..., c], bins=8, range=(0, 1))[0] for c in range(3)]
    colour_part = np.concatenate(colour) / (SIZE * SIZE)
    hue = np.histogram(hsv[..., 0], bins=12, range=(0, 1), weights=hsv[..., 1])[0]
    hue_part = hue / max(hue.sum(), 1e-9)
    grey = pixels @ np.array([0.299, 0.587, 0.114])
    small = (
        np.asarray(
            Image.fromarray((grey * 255).astype(np.uint8)).resize((12, 12), Image.Resampling.BOX),
            dtype=np.float64,
        ).ravel()
        / 255.0
    )
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    cells = [_orientation_histogram(angle, magnitude)]
    step = SIZE // GRID
    for row in range(GRID):
        for col in range(GRID):
            window = (slice(row * step, (row + 1) * step), slice(col * step, (col + 1) * step))
            cells.append(_orientation_histogram(angle[window], magnitude[window]))
    strong = magnitude > 0.1
    edges = np.array([strong.mean()])
    return np.concatenate([colour_part, hue_part, small, *cells, edges]).astype(np.float64)
