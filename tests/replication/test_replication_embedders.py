"""Image and text embedders: the pixel embedder against an independent PIL computation, its invariances, the
TorchScript (SSCD) path on a tiny scripted model, open_clip's install hint, TF-IDF nearest captions."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
from PIL import Image

from radio.replication.embedders import (
    ImageEmbedder,
    TextEmbedder,
    embedder_names,
    get_embedder,
    get_text_embedder,
    nearest_caption_similarity,
)


def _reference_pixel(image: np.ndarray, grid: int = 8) -> np.ndarray:
    """Independent: per channel, PIL's BOX filter (exact block means at an integer factor) in float mode."""
    channels = [
        np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode="F").resize((grid, grid), Image.BOX))
        for c in range(3)
    ]
    pooled = np.stack(channels, axis=-1).astype(np.float64)
    pooled -= pooled.mean(axis=(0, 1))
    flat = pooled.ravel()
    return flat / np.linalg.norm(flat)


def test_pixel_embedder_matches_reference_and_invariances():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 200, size=(5, 32, 32, 3), dtype=np.uint8)
    embedder = get_embedder("pixel")
    assert isinstance(embedder, ImageEmbedder)
    out = embedder.embed(images)
    assert out.dtype == np.float32 and out.shape == (5, 192)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    for image, row in zip(images, out, strict=True):
        np.testing.assert_allclose(row, _reference_pixel(image), atol=1e-5)
    # A per-channel brightness offset leaves the embedding unchanged (channel means are subtracted).
    shifted = (images.astype(np.int16) + np.array([20, 10, 40], dtype=np.int16)).astype(np.uint8)
    np.testing.assert_allclose(embedder.embed(shifted), out, atol=1e-5)
    # Sides not divisible by the grid are resampled first; a flat image gives a zero vector, not NaN.
    assert embedder.embed(rng.integers(0, 255, size=(2, 30, 30, 3), dtype=np.uint8)).shape == (2, 192)
    flat = embedder.embed(np.full((1, 32, 32, 3), 90, dtype=np.uint8))
    assert np.all(flat == 0)


def test_registry_and_input_checks():
    assert {"pixel", "open_clip", "sscd"} <= set(embedder_names())
    with pytest.raises(ValueError, match="unknown image embedder 'nope'"):
        get_embedder("nope")
    with pytest.raises(ValueError, match="uint8"):
        get_embedder("pixel").embed(np.zeros((1, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(n, H, W, 3\)"):
        get_embedder("pixel").embed(np.zeros((32, 32, 3), dtype=np.uint8))


def test_open_clip_missing_gives_install_hint(tmp_path, monkeypatch):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"")
    real_import = builtins.__import__

    def no_open_clip(name, *args, **kwargs):
        if name == "open_clip":
            raise ImportError("No module named 'open_clip'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_open_clip)
    with pytest.raises(ImportError, match="--no-deps open-clip-torch"):
        get_embedder("open_clip", weights=weights)
    with pytest.raises(FileNotFoundError, match="open_clip weights"):
        get_embedder("open_clip", weights=tmp_path / "absent.bin")


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_sscd_torchscript_path(tmp_path):
    """A tiny scripted model saved and loaded by path: the embedder's output is the normalised model output."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, kernel_size=4, stride=4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean(dim=(2, 3))

    torch.manual_seed(0)
    model = Tiny().eval()
    path = tmp_path / "sscd.pt"
    torch.jit.script(model).save(str(path))
    images = np.random.default_rng(1).integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    out = get_embedder("sscd", path=path, size=16).embed(images)
    x = torch.from_numpy(images.astype(np.float32) / 255).permute(0, 3, 1, 2)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        expected = model(x).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="SSCD TorchScript file"):
        get_embedder("sscd", path=tmp_path / "absent.pt")


def test_tfidf_nearest_caption():
    captions = ["almond blossom by elise varnhagen", "sunflowers oil painting", "an astronaut floating in space"]
    embedder = get_text_embedder("tfidf")
    assert isinstance(embedder, TextEmbedder)
    sims, where = nearest_caption_similarity(
        embedder, ["almond blossom by elise varnhagen", "astronaut in space", "bicycle"], captions, chunk=2
    )
    assert where[:2].tolist() == [0, 2]
    assert sims[0] == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < sims[1] < 1.0
    assert sims[2] == pytest.approx(0.0, abs=1e-6)  # no shared word
    with pytest.raises(ValueError, match="unknown text embedder"):
        get_text_embedder("nope")
