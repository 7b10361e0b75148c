"""Object detectors: the flag detector's agreement on the synthetic corpus (also blurred and noisy, as a tiny
diffusion model would draw it), the agreement arithmetic, the registry."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from radio.replication.corpus import load_corpus
from radio.replication.detectors import ObjectDetector, agreement, detector_names, get_detector


def test_flag_detector_agrees_with_ground_truth(small_corpus_dir):
    corpus = load_corpus(small_corpus_dir)
    images = corpus.load_images()
    truth = corpus.frame["has_object"].to_numpy()
    detector = get_detector("flag")
    assert isinstance(detector, ObjectDetector)
    result = agreement(detector, images, truth)
    assert result.accuracy == 1.0 and result.precision == 1.0 and result.recall == 1.0
    assert result.true_positive == int(truth.sum())

    # Degraded copies: blur (radius 0.8) and pixel noise (sd 20) keep the subject images' agreement >= 95%.
    rng = np.random.default_rng(0)
    subject = corpus.frame["group"].to_numpy() == "subject"
    blurred = np.stack(
        [np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(0.8))) for im in images[subject]]
    )
    noisy = np.clip(blurred + rng.normal(0, 20, size=blurred.shape), 0, 255).astype(np.uint8)
    assert agreement(detector, noisy, truth[subject]).accuracy >= 0.95
    # Upscaled images are resized back to 32x32 before detection.
    big = np.stack([np.asarray(Image.fromarray(im).resize((64, 64))) for im in images[subject][:20]])
    np.testing.assert_array_equal(detector.detect(big), truth[subject][:20])


class _Fixed:
    name = "fixed"

    def __init__(self, answers):
        self.answers = np.asarray(answers, dtype=bool)

    def detect(self, images):
        return self.answers


def test_agreement_arithmetic():
    images = np.zeros((6, 4, 4, 3), dtype=np.uint8)
    result = agreement(_Fixed([1, 1, 0, 0, 1, 0]), images, [1, 0, 0, 1, 1, 0])
    assert (result.true_positive, result.false_positive, result.false_negative, result.true_negative) == (2, 1, 1, 2)
    assert result.accuracy == pytest.approx(4 / 6)
    assert result.precision == pytest.approx(2 / 3) and result.recall == pytest.approx(2 / 3)
    none_found = agreement(_Fixed([0, 0]), images[:2], [0, 0])
    assert np.isnan(none_found.precision) and np.isnan(none_found.recall) and none_found.accuracy == 1.0
    with pytest.raises(ValueError, match="labels: expected 6"):
        agreement(_Fixed([0] * 6), images, [1, 0])


def test_registry(tmp_path):
    assert {"flag", "clip-zero-shot"} <= set(detector_names())
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        get_detector("nope")
    with pytest.raises(FileNotFoundError, match="CLIP model folder"):
        get_detector("clip-zero-shot", path=tmp_path / "absent")
    with pytest.raises(ValueError, match="min_share"):
        get_detector("flag", min_share=0.0)


def test_flag_detector_on_hand_labelled_generations():
    """32 generations of the subject prompt by the tiny default (step 750, guidance 1), labelled by eye: every
    clearly drawn flag is found and nothing is found where no flag is drawn; faint, washed-out flags are missed
    (so the detector's object rate is a lower bound). At the first default (min_share 0.5) it found 8 of 14."""
    from pathlib import Path

    data = np.load(Path(__file__).parent / "data" / "flag_generated.npz")
    images, clear, faint = data["images"], data["clear_flag"], data["faint_flag"]
    found = get_detector("flag").detect(images)
    assert found[clear].all()
    assert not found[~clear & ~faint].any()
    assert agreement(get_detector("flag"), images, clear | faint).accuracy >= 0.85
    assert get_detector("flag", min_share=0.5).detect(images)[clear].sum() < clear.sum()
