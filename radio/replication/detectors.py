"""Object detectors behind one protocol (`detect(images) -> bool (n,)`), registered by name, and their agreement
with labels on a validation sample (every detector needs one: DESIGN §5 saw template matching and a small CNN
fail, and a colour detector work against same-scene controls only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from radio.registry import Registry
from radio.replication.embedders import check_images, projected
from radio.replication.synthetic import (
    FLAG_CANTON,
    FLAG_HEIGHT,
    FLAG_STRIPE_ROWS,
    FLAG_TOP_LEFT,
    FLAG_WIDTH,
    IMAGE_SIZE,
)


@runtime_checkable
class ObjectDetector(Protocol):
    """Says, for each uint8 image (n, H, W, 3), whether the object is in it."""

    name: str

    def detect(self, images: np.ndarray) -> np.ndarray:
        """Boolean (n,) array: True where the object is found."""
        ...


DETECTORS: Registry[Callable[..., ObjectDetector]] = Registry("detector", field="analysis.detector")


def register_detector(name: str) -> Callable[[Callable[..., ObjectDetector]], Callable[..., ObjectDetector]]:
    """Class decorator: make a detector available to `get_detector(name, ...)`."""
    return DETECTORS.register(name)


def detector_names() -> list[str]:
    """Names of the registered detectors."""
    return DETECTORS.names()


def get_detector(name: str, **kwargs: Any) -> ObjectDetector:
    """The detector registered as `name`, built with `kwargs`."""
    return DETECTORS.get(name)(**kwargs)


@register_detector("flag")
class FlagDetector:
    """The synthetic corpus's object: red, white and blue pixels laid out as the flag (blue canton at the top-left,
    red and white stripes beside and under it) in a window near the top-left corner.

    Pixels are classed by tolerant colour rules (a tiny diffusion model blurs edges and shifts hues), then each
    region of the layout must hold at least `min_share` of its colour, at some offset of up to `search` pixels
    from the planted position. Colour classes plus layout, not pixel template matching, which failed on the
    prototype's generations.

    `min_share` 0.2: on 32 generations of the subject prompt (tiny default, step 750, guidance 1), hand-labelled,
    the clearly drawn flags scored 0.21-0.79 and the images without one 0.00-0.08 (faint, washed-out flags also
    scored 0.00-0.08: they are missed, so the detector's rate is a lower bound). At 0.5 it found 8 of the 14 clear
    flags. The sample is `tests/replication/data/flag_generated.npz`.
    """

    def __init__(self, min_share: float = 0.2, search: int = 3) -> None:
        if not 0.0 < min_share <= 1.0:
            raise ValueError(f"min_share: expected a value in (0, 1], got {min_share}")
        self.min_share = min_share
        self.search = search
        self.name = "flag"

    @staticmethod
    def colour_classes(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(red, white, blue) boolean masks (n, H, W) of the pixels taken for each flag colour."""
        rgb = images.astype(np.int16)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        red = (r > 120) & (r - g > 60) & (r - b > 50)
        white = (rgb.min(axis=-1) > 170) & (rgb.max(axis=-1) - rgb.min(axis=-1) < 60)
        blue = (b > 90) & (b - r > 40) & (b - g > 25)
        return red, white, blue

    def scores(self, images: np.ndarray) -> np.ndarray:
        """Per image, the best (over offsets) of the weakest region's colour share: detect means >= min_share."""
        images = check_images(images)
        if images.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
            from radio.replication.embedders import _resize_batch

            images = _resize_batch(images, IMAGE_SIZE)
        red, white, blue = self.colour_classes(images)
        canton_h, canton_w = FLAG_CANTON
        best = np.zeros(len(images))
        for dy in range(-self.search, self.search + 1):
            for dx in range(-self.search, self.search + 1):
                top, left = FLAG_TOP_LEFT[0] + dy, FLAG_TOP_LEFT[1] + dx
                if top < 0 or left < 0 or top + FLAG_HEIGHT > IMAGE_SIZE or left + FLAG_WIDTH > IMAGE_SIZE:
                    continue
                shares = [blue[:, top : top + canton_h, left : left + canton_w].mean(axis=(1, 2))]
                for stripe in range(FLAG_HEIGHT // FLAG_STRIPE_ROWS):
                    rows = slice(top + stripe * FLAG_STRIPE_ROWS, top + (stripe + 1) * FLAG_STRIPE_ROWS)
                    # Stripes beside the canton start after it; those under it span the flag's width.
                    start = left + canton_w if stripe * FLAG_STRIPE_ROWS < canton_h else left
                    mask = red if stripe % 2 == 0 else white
                    shares.append(mask[:, rows, start : left + FLAG_WIDTH].mean(axis=(1, 2)))
                best = np.maximum(best, np.min(np.stack(shares), axis=0))
        return best

    def detect(self, images: np.ndarray) -> np.ndarray:
        """True where every region of the flag's layout holds enough of its colour."""
        return self.scores(images) >= self.min_share


@register_detector("clip-zero-shot")
class ClipZeroShotDetector:
    """CLIP zero-shot from a local transformers `CLIPModel` folder: the object is present when the softmax over
    [positive, *negatives] text prompts gives the positive at least `threshold`."""

    def __init__(
        self,
        path: str | Path,
        positive: str = "a photo with a flag in it",
        negatives: Sequence[str] = ("a photo without any flag",),
        threshold: float = 0.5,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"CLIP model folder: {folder} not found")
        from transformers import CLIPModel, CLIPProcessor

        self.model = CLIPModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
        self.processor = CLIPProcessor.from_pretrained(str(folder), local_files_only=True)
        self.texts = [positive, *negatives]
        self.threshold = threshold
        self.device = device
        self.batch_size = batch_size
        self.name = "clip-zero-shot"

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Softmax probability of the positive prompt, per image."""
        import torch
        from PIL import Image

        images = check_images(images)
        text = self.processor(text=self.texts, return_tensors="pt", padding=True).to(self.device)
        out = []
        with torch.no_grad():
            text_features = projected(self.model.get_text_features(**text))
            text_features = text_features / text_features.norm(dim=-1, keepdim=True)
            for start in range(0, len(images), self.batch_size):
                batch = [Image.fromarray(img) for img in images[start : start + self.batch_size]]
                pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
                image_features = projected(self.model.get_image_features(pixel_values=pixels))
                image_features = image_features / image_features.norm(dim=-1, keepdim=True)
                logits = self.model.logit_scale.exp() * image_features @ text_features.T
                out.append(logits.softmax(dim=-1)[:, 0].float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def detect(self, images: np.ndarray) -> np.ndarray:
        """True where the positive prompt wins with probability >= threshold."""
        return self.probabilities(images) >= self.threshold


@dataclass(frozen=True)
class DetectorAgreement:
    """A detector's agreement with labels on a validation sample (precision / recall NaN when undefined)."""

    detector: str
    n: int
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int
    accuracy: float
    precision: float
    recall: float


def agreement(detector: ObjectDetector, images: np.ndarray, labels: np.ndarray | Sequence[bool]) -> DetectorAgreement:
    """Accuracy, precision and recall of `detector` against the ground-truth `labels` of `images`."""
    truth = np.asarray(labels, dtype=bool)
    if truth.shape != (len(images),):
        raise ValueError(f"labels: expected {len(images)} flags, got shape {truth.shape}")
    if truth.size == 0:
        raise ValueError("agreement: empty validation sample")
    found = np.asarray(detector.detect(images), dtype=bool)
    tp = int((found & truth).sum())
    fp = int((found & ~truth).sum())
    fn = int((~found & truth).sum())
    tn = int((~found & ~truth).sum())
    return DetectorAgreement(
        detector=detector.name,
        n=int(truth.size),
        true_positive=tp,
        false_positive=fp,
        false_negative=fn,
        true_negative=tn,
        accuracy=(tp + tn) / truth.size,
        precision=tp / (tp + fp) if tp + fp else float("nan"),
        recall=tp / (tp + fn) if tp + fn else float("nan"),
    )
