"""The real-run CLIP paths on a tiny random CLIPModel saved to a folder (built from a config, no download): the
CLIP text embedder, the zero-shot detector, and the keyword filter's real token counts from the same folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radio.replication.detectors import get_detector
from radio.replication.embedders import get_text_embedder, nearest_caption_similarity
from radio.replication.keywords import token_counts


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tinyclip")
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = ["!", ",", *letters, *[f"{c}</w>" for c in letters], "<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    small = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    text = {**small, "vocab_size": len(tokens), "max_position_embeddings": 77}
    text |= {"bos_token_id": len(tokens) - 2, "eos_token_id": len(tokens) - 1, "pad_token_id": len(tokens) - 1}
    config = CLIPConfig(text_config=text, vision_config={**small, "image_size": 32, "patch_size": 8}, projection_dim=8)
    CLIPModel(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_clip_text_embedder(tiny_clip):
    embedder = get_text_embedder("clip", path=tiny_clip)
    out = embedder.fit([]).embed(["a cat", "a dog", "a cat"])
    assert out.shape == (3, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out[0], out[2], atol=1e-6)
    sims, where = nearest_caption_similarity(embedder, ["a dog"], ["a cat", "a dog", "sky"])
    assert where.tolist() == [1] and sims[0] == pytest.approx(1.0, abs=1e-5)


def test_clip_zero_shot_detector(tiny_clip):
    detector = get_detector("clip-zero-shot", path=tiny_clip, threshold=0.5)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    probabilities = detector.probabilities(images)
    assert probabilities.shape == (5,) and np.all((probabilities >= 0) & (probabilities <= 1))
    np.testing.assert_array_equal(detector.detect(images), probabilities >= 0.5)


def test_token_counts_from_the_model_folder(tiny_clip):
    assert token_counts(["cat"], tiny_clip).tolist() == [5]  # start, c, a, t</w>, end: no merges
