"""The tiny text-to-image model: config validation, a toy training run with a real signal, checkpoints, resume."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from radio.config import ConfigError
from radio.replication.generators import GeneratorError, load_generator
from radio.replication.t2i import (
    TinyT2I,
    TinyT2IConfig,
    TrainingDataError,
    checkpoint_dir,
    read_checkpoint_meta,
    train_tiny_t2i,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a shared, loaded machine two threads were up to 10x slower for these small batches."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CAPTIONS = ["a bright sky over the sea", "a red square at night"]


def toy_images() -> np.ndarray:
    """Two images far apart in pixel space: white over blue, and a red square on black."""
    images = np.zeros((2, 32, 32, 3), np.uint8)
    images[0, :16] = (240, 240, 250)
    images[0, 16:] = (30, 60, 200)
    images[1] = (20, 20, 20)
    images[1, 8:24, 8:24] = (220, 30, 30)
    return images


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """150 steps on the two toy pairs (one thread: oversubscribed threads are 10x slower on a loaded machine)."""
    out = tmp_path_factory.mktemp("toy_t2i")
    cfg = TinyT2IConfig(
        train_steps=150, batch_size=12, learning_rate=3e-3, warmup_steps=10, log_every_steps=25, threads=1
    )
    seen: list[tuple[int, float]] = []
    result = train_tiny_t2i(
        CAPTIONS,
        toy_images(),
        out,
        cfg,
        seed=0,
        checkpoint_steps=[50, 100],
        progress=lambda step, loss: seen.append((step, loss)),
    )
    return {"out": out, "result": result, "progress": seen}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_size", 30),
        ("block_out_channels", ()),
        ("attention_levels", (5,)),
        ("norm_num_groups", 7),
        ("text_heads", 3),
        ("max_caption_tokens", 100),
        ("train_steps", 0),
        ("learning_rate", 0.0),
        ("caption_dropout", 1.0),
        ("prediction_type", "sample"),
        ("beta_schedule", "cosine"),
        ("attention_kernel", "flash"),
    ],
)
def test_config_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        TinyT2IConfig(**{field: value})


def test_config_round_trip_and_unknown_keys() -> None:
    cfg = TinyT2IConfig(train_steps=10, block_out_channels=(8, 16), attention_levels=(1,))
    assert TinyT2IConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown key"):
        TinyT2IConfig.from_dict({"train_step": 3})


def test_attention_kernels_compute_the_same_unet() -> None:
    """The "math" and "sdpa" kernels compute one function: same weights, same output up to float rounding."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    from radio.replication.t2i.model import set_attention_kernel

    model = TinyT2I.create(TinyT2IConfig(image_size=16), CAPTIONS, seed=0)
    processors = {type(p) for p in model.unet.attn_processors.values()}
    assert processors == {AttnProcessor}  # the config's default, "math"
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10, 500, 990])
    with torch.no_grad():
        context = model.encode_text(model.tokenize([*CAPTIONS, ""]))
        math_out = model.unet(x, t, encoder_hidden_states=context).sample
        set_attention_kernel(model.unet, "sdpa")
        assert {type(p) for p in model.unet.attn_processors.values()} == {AttnProcessor2_0}
        sdpa_out = model.unet(x, t, encoder_hidden_states=context).sample
    assert math_out.abs().max() > 0.1
    torch.testing.assert_close(math_out, sdpa_out, rtol=1e-4, atol=1e-5)


def test_fused_and_looped_adamw_train_the_same_weights(tmp_path: Path) -> None:
    """`fused_adamw` picks a kernel, not an optimizer: three steps either way give the same weights (rounding)."""
    weights = {}
    for fused in (True, False):
        cfg = TinyT2IConfig(image_size=16, train_steps=3, batch_size=4, warmup_steps=1, fused_adamw=fused)
        train_tiny_t2i(CAPTIONS, toy_images()[:, ::2, ::2], tmp_path / str(fused), cfg, seed=0, checkpoint_steps=[])
        weights[fused] = TinyT2I.load(checkpoint_dir(tmp_path / str(fused), 3)).unet.state_dict()
    assert weights[True].keys() == weights[False].keys()
    moved = TinyT2I.create(TinyT2IConfig(image_size=16), CAPTIONS, seed=0).unet.state_dict()
    assert any(not torch.equal(weights[True][k], moved[k]) for k in moved)  # training changed the weights
    for key, value in weights[True].items():
        torch.testing.assert_close(value, weights[False][key], rtol=1e-4, atol=1e-5)


def test_bad_training_data_is_rejected(tmp_path: Path) -> None:
    cfg = TinyT2IConfig(train_steps=2)
    with pytest.raises(TrainingDataError, match="images"):
        train_tiny_t2i(CAPTIONS, toy_images().astype(np.float32), tmp_path, cfg, 0, [])
    with pytest.raises(TrainingDataError, match="captions"):
        train_tiny_t2i(CAPTIONS[:1], toy_images(), tmp_path, cfg, 0, [])
    with pytest.raises(ValueError, match="checkpoint_steps"):
        train_tiny_t2i(CAPTIONS, toy_images(), tmp_path, cfg, 0, [5])


def test_tokenizer_keeps_words_whole() -> None:
    model = TinyT2I.create(TinyT2IConfig(), ["Almond Blossom by Vincent", "a cat"], seed=0)
    ids = model.tokenize(["almond blossom, by someone"])[0].tolist()
    vocab = model.tokenizer.get_vocab()
    assert ids[:6] == [vocab["<s>"], vocab["almond"], vocab["blossom"], vocab["<unk>"], vocab["by"], vocab["<unk>"]]
    assert ids[6] == vocab["</s>"] and set(ids[7:]) == {vocab["<pad>"]}


def test_loss_decreases(toy_run: dict) -> None:
    losses = [loss for _, loss in toy_run["result"]["losses"]]
    assert [s for s, _ in toy_run["progress"]] == [25, 50, 75, 100, 125, 150]
    assert losses[-1] < 0.5 * losses[0]
    assert toy_run["result"]["completed"] and toy_run["result"]["final_loss"] == losses[-1]


def test_checkpoints_at_requested_steps_load(toy_run: dict) -> None:
    out = toy_run["out"]
    assert toy_run["result"]["checkpoints"] == {str(s): str(checkpoint_dir(out, s)) for s in (50, 100, 150)}
    for step in (50, 100, 150):
        folder = checkpoint_dir(out, step)
        assert {p.name for p in folder.iterdir()} >= {"t2i_config.json", "tokenizer", "text_encoder", "unet"}
        assert read_checkpoint_meta(folder)["step"] == step
    model = TinyT2I.load(checkpoint_dir(out, 50))
    assert model.config.train_steps == 150 and 0 < model.parameter_count()["unet"]
    # The kernel is not saved with the UNet's weights: loading applies the one the config names.
    assert {type(p).__name__ for p in model.unet.attn_processors.values()} == {"AttnProcessor"}


def test_guided_generations_look_like_their_caption_image(toy_run: dict) -> None:
    """Real signal: each caption's samples are nearer (mean absolute pixel error) to its own training image."""
    gen = load_generator("tiny", checkpoint_dir(toy_run["out"], 150), device="cpu")
    seeds = [11, 12, 13]
    images = gen.generate(
        [CAPTIONS[0]] * 3 + [CAPTIONS[1]] * 3, seeds * 2, guidance_scale=3.0, num_inference_steps=15, batch_size=6
    )
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
    targets = toy_images().astype(float)
    dist = np.abs(images.astype(float)[:, None] - targets[None]).mean(axis=(2, 3, 4))  # (6 samples, 2 targets)
    own = np.concatenate([dist[:3, 0], dist[3:, 1]])
    other = np.concatenate([dist[:3, 1], dist[3:, 0]])
    # Pooled over both captions: in 150 steps the red square is learned well, the sky less (measured 58 vs 114).
    assert own.mean() < other.mean() - 20, dist


def test_tiny_image_alone_equals_its_batch_twin(toy_run: dict) -> None:
    gen = load_generator("tiny", checkpoint_dir(toy_run["out"], 100), device="cpu")
    prompts = [CAPTIONS[0], CAPTIONS[1], CAPTIONS[1], "an unseen prompt"]
    batch = gen.generate(prompts, [1, 2, 3, 4], guidance_scale=3.0, num_inference_steps=5, batch_size=4)
    alone = gen.generate(prompts[2:3], [3], guidance_scale=3.0, num_inference_steps=5)
    assert np.array_equal(alone[0], batch[2])  # bit-identical with one thread (see generators.base)
    assert not np.array_equal(batch[1], batch[2])  # another seed, another image
    with pytest.raises(GeneratorError, match="seeds"):
        gen.generate(prompts, [1], guidance_scale=3.0, num_inference_steps=5)
    with pytest.raises(GeneratorError, match="path"):
        load_generator("tiny", toy_run["out"])  # the run folder, not a checkpoint


def test_interrupted_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    cfg = TinyT2IConfig(
        train_steps=6, batch_size=2, block_out_channels=(8, 16), attention_levels=(1,), log_every_steps=2, threads=1
    )
    whole = train_tiny_t2i(CAPTIONS, toy_images(), tmp_path / "whole", cfg, seed=3, checkpoint_steps=[])
    part = train_tiny_t2i(
        CAPTIONS, toy_images(), tmp_path / "cut", cfg, seed=3, checkpoint_steps=[], stop_after_steps=3
    )
    assert not part["completed"] and part["steps"] == 3
    resumed = train_tiny_t2i(CAPTIONS, toy_images(), tmp_path / "cut", cfg, seed=3, checkpoint_steps=[])
    assert resumed["completed"] and resumed["losses"] == whole["losses"]
    a = TinyT2I.load(checkpoint_dir(tmp_path / "whole", 6)).unet.state_dict()
    b = TinyT2I.load(checkpoint_dir(tmp_path / "cut", 6)).unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
