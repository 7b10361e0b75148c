"""The fast generation path (integer green mask, numpy bias) equals the previous path bit for bit, on fixed seeds."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from radio.watermark import Watermark, WatermarkConfig, hashing
from radio.watermark.hashing import RadioHasher
from radio.watermark.sampling import nucleus_log_probs


def previous_path(wm: Watermark, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """The logits processor as it was before the fast path: float uniforms, then a torch clone/cast/multiply/add."""
    windows = input_ids[:, input_ids.shape[1] - wm.k :] if wm.k else input_ids[:, :0]
    width = min(scores.shape[1], wm.vocab_size)
    uniforms = wm.hasher.vocab_uniforms(windows.to(torch.int64), wm.vocab_size)[:, :width]
    if wm.config.scheme != "kgw":
        return wm.scheme.sampling_logits(scores, uniforms, wm.threshold, wm.temperature, wm.top_p).to(scores.dtype)
    biased = scores.float().clone()
    biased[:, :width] += wm.scheme.delta * (uniforms < wm.threshold).to(biased.dtype)
    return nucleus_log_probs(biased, wm.temperature, wm.top_p).to(scores.dtype)


@pytest.mark.parametrize("scheme", ["kgw", "aaronson"])
@pytest.mark.parametrize("hashing", ["radio", "three_bricks"])
@pytest.mark.parametrize(("vocab", "width"), [(2048, 2048), (100, 128), (500, 300)])
@pytest.mark.parametrize("delta", [3.0, 2.1, 0.37])
def test_processor_equals_previous_path(scheme: str, hashing: str, vocab: int, width: int, delta: float) -> None:
    gen = torch.Generator().manual_seed(vocab + width)
    wm = Watermark(WatermarkConfig(scheme, k=2, delta=delta, hashing=hashing), key=77, vocab_size=vocab, top_p=0.9)
    input_ids = torch.randint(0, vocab, (16, 9), generator=gen)
    scores = torch.randn(16, width, generator=gen) * 3
    scores[0, :4] = scores[0, 4]  # ties, and a -0.0 logit
    scores[1, 0] = -0.0
    fast = wm.logits_processor()(input_ids, scores.clone())
    assert fast.dtype == scores.dtype
    assert torch.equal(fast, previous_path(wm, input_ids, scores.clone()))


@pytest.mark.parametrize("threshold", [0.25, 0.5, 1e-9, 1 - 2**-53, 0.1 + 2**-40])
def test_integer_green_mask_equals_float_comparison(threshold: float) -> None:
    hasher = RadioHasher(b"key", "kgw")
    windows = torch.randint(0, 5000, (64, 3), generator=torch.Generator().manual_seed(3))
    expected = hasher.vocab_uniforms(windows, 5000) < threshold
    assert torch.equal(hasher.vocab_green(windows, 5000, threshold), expected)
    torch_backend = RadioHasher(b"key", "kgw", backend="torch")
    assert torch.equal(torch_backend.vocab_green(windows, 5000, threshold), expected)


@pytest.mark.parametrize("budget_rows", [10_000, 40, 3])
def test_cached_green_rows_equal_fresh_hashes_when_the_cache_fills(
    monkeypatch: pytest.MonkeyPatch, budget_rows: int
) -> None:
    """Windows repeat across calls (as in generation) and the cache empties when full: every mask stays exact."""
    vocab, threshold = 700, 0.25
    monkeypatch.setattr(hashing, "GREEN_CACHE_BYTES", budget_rows * vocab)
    hasher = RadioHasher(b"key", "kgw")
    generator = torch.Generator().manual_seed(5)
    for _ in range(12):
        windows = torch.randint(0, 30, (16, 1), generator=generator)  # 30 windows: many repeats, within and across
        expected = hasher.vocab_uniforms(windows, vocab) < threshold
        assert torch.equal(hasher.vocab_green(windows, vocab, threshold), expected)
    assert torch.equal(hasher.vocab_green(windows[:0], vocab, threshold), torch.zeros((0, vocab), dtype=torch.bool))


@pytest.mark.parametrize("scheme", ["kgw", "aaronson"])
def test_generate_gives_the_same_tokens_as_the_previous_path(scheme: str) -> None:
    """End to end on fixed seeds: `generate` samples exactly the same tokens through either processor."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=512,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(config).eval()
    wm = Watermark(WatermarkConfig(scheme, k=2), key=b"alice", vocab_size=500)
    prompts = torch.randint(3, 500, (8, 6), generator=torch.Generator().manual_seed(1))

    def generate(processor: object) -> torch.Tensor:
        torch.manual_seed(5)
        with torch.no_grad():
            return model.generate(
                prompts,
                attention_mask=torch.ones_like(prompts),
                max_new_tokens=40,
                min_new_tokens=40,
                logits_processor=[processor],
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                pad_token_id=0,
            )

    fast = generate(wm.logits_processor())
    previous = generate(lambda input_ids, scores: previous_path(wm, input_ids, scores))
    assert torch.equal(fast, previous)
