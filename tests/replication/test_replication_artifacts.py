"""The image grid of generations over their nearest training images: both rows, upscaled to be seen."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from radio.replication.artifacts import image_grid


@pytest.mark.parametrize(("size", "scale"), [(16, 6), (32, 3)])
def test_grid_upscales_small_images_to_96_pixels(size: int, scale: int) -> None:
    generated = np.zeros((4, size, size, 3), np.uint8)
    nearest = np.full((4, size, size, 3), 200, np.uint8)
    grid = np.asarray(Image.open(io.BytesIO(image_grid(generated, nearest))))
    side = size * scale
    assert grid.shape == (2 * side + 3 * 2, 4 * (side + 2) + 2, 3)
    assert (grid[2 : 2 + side, 2 : 2 + side] == 0).all()  # first generation, top row
    assert (grid[4 + side : 4 + 2 * side, 2 : 2 + side] == 200).all()  # its nearest image, below
