"""Plain-file artifacts of the replication audit: JSON payloads, per-seed flag bit strings and PNG image grids.

Stage folders and evaluation rows hold only plain values (nothing crosses processes but paths), so flags travel
as bit strings (`"0110"`) and images as PNG bytes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np


def write_json(path: Path, payload: Any) -> None:
    """Write `payload` as indented JSON (NaN and NumPy values made JSON-safe)."""
    from radio.stats.results import json_safe

    path.write_text(json.dumps(json_safe(payload), indent=2))


def flags_to_bits(flags: np.ndarray) -> str:
    """The bit string of a boolean array (`[False, True] -> "01"`), for JSON rows."""
    return "".join("1" if f else "0" for f in np.asarray(flags, dtype=bool))


def bits_to_flags(text: str) -> np.ndarray:
    """The boolean array of a row's bit string (`"0110"`)."""
    return np.frombuffer(str(text).encode(), dtype=np.uint8) == ord("1")


def png_bytes(image: np.ndarray) -> bytes:
    """One uint8 (H, W, 3) image as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def image_grid(generated: np.ndarray, nearest: np.ndarray, scale: int | None = None, pad: int = 2) -> bytes:
    """A PNG of two rows: generations on top, each one's nearest training image below (nearest-neighbour
    upscaled by `scale`; by default to at least 96 pixels a side, so that 16x16 and 32x32 images are visible)."""
    n, height, width, _ = generated.shape
    scale = scale if scale is not None else max(1, -(-96 // height))
    h, w = height * scale, width * scale
    canvas = np.full((2 * h + 3 * pad, n * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for row, images in enumerate((generated, nearest)):
        for col, image in enumerate(images):
            big = np.kron(image, np.ones((scale, scale, 1), dtype=np.uint8)) if scale > 1 else image
            top, left = pad + row * (h + pad), pad + col * (w + pad)
            canvas[top : top + h, left : left + w] = big[:h, :w]
    return png_bytes(canvas)
