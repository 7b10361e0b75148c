"""The `sd` generator on a tiny random StableDiffusionPipeline saved to a folder: loading, batching, seeding."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from radio.replication.generators import GENERATORS, GeneratorError, ImageGenerator, load_generator
from radio.replication.generators.random_sd import build_random_sd_pipeline


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: batched and single images are then bit-identical (see radio.replication.generators.base)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_sd_pipeline(tmp_path_factory.mktemp("random_sd") / "pipeline", seed=0, image_size=16)


def test_sd_generator_batches_and_seeds(sd_folder: Path) -> None:
    gen = load_generator("sd", sd_folder, device="cpu")
    assert isinstance(gen, ImageGenerator)
    assert type(gen.pipeline).__name__ == "StableDiffusionPipeline"
    prompts = ["almond blossom by vincent"] * 3 + ["an astronaut on the moon"] * 2
    seeds = [1, 2, 3, 4, 5]
    images = gen.generate(prompts, seeds, guidance_scale=3.0, num_inference_steps=4, batch_size=2)
    assert images.shape == (5, 16, 16, 3) and images.dtype == np.uint8
    alone = gen.generate(prompts[4:], seeds[4:], guidance_scale=3.0, num_inference_steps=4)
    assert np.array_equal(alone[0], images[4])  # batch 3 of 3 held one image; regenerated in a batch of its own
    twin = gen.generate(prompts[1:2], seeds[1:2], guidance_scale=3.0, num_inference_steps=4)
    assert np.array_equal(twin[0], images[1])  # the second row of a two-image batch
    assert not np.array_equal(images[0], images[1])  # same prompt, other seed
    assert gen.generate([], [], guidance_scale=3.0, num_inference_steps=4).shape == (0, 16, 16, 3)


def test_bad_requests_name_the_argument(sd_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="kind"):
        load_generator("dalle", sd_folder)
    with pytest.raises(GeneratorError, match="path"):
        load_generator("sd", tmp_path / "missing")
    with pytest.raises(GeneratorError, match="path"):
        load_generator("sd", tmp_path)  # a folder without model_index.json
    with pytest.raises(GeneratorError, match="dtype"):
        load_generator("sd", sd_folder, device="cpu", dtype="float16")
    gen = load_generator("sd", sd_folder, device="cpu", scheduler="pipeline")
    assert {"tiny", "sd"} <= set(GENERATORS)
    with pytest.raises(GeneratorError, match="prompts"):
        gen.generate("one string", [1], guidance_scale=3.0, num_inference_steps=2)
    with pytest.raises(GeneratorError, match="num_inference_steps"):
        gen.generate(["a"], [1], guidance_scale=3.0, num_inference_steps=0)
