"""Watermarked generation through `model.generate` with a tiny randomly initialised Llama."""

from __future__ import annotations

import pytest
import torch
from reference_three_bricks import reference_aaronson_choice, reference_kgw_green
from transformers import LlamaConfig, LlamaForCausalLM

from radio import Watermark, WatermarkConfig, detect_tokens
from radio.watermark import plain_generation_kwargs


def _tiny_llama(vocab_size: int = 1000, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


def _generate(model: LlamaForCausalLM, kwargs: dict, batch: int = 16, new_tokens: int = 200, seed: int = 1):
    torch.manual_seed(seed)
    prompts = torch.randint(3, model.config.vocab_size, (batch, 8), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = model.generate(
            prompts,
            attention_mask=torch.ones_like(prompts),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            **kwargs,
        )
    return prompts.tolist(), out[:, prompts.shape[1] :].tolist()


@pytest.mark.parametrize("scheme", ["kgw", "aaronson"])
def test_generated_text_is_detected_and_wrong_key_is_not(scheme: str) -> None:
    model = _tiny_llama()
    wm = Watermark(WatermarkConfig(scheme, k=2, gamma=0.25, delta=3.0), key=b"alice-key", vocab_size=1000)
    prompts, answers = _generate(model, wm.generation_kwargs())
    res = detect_tokens(wm, answers, prompts=prompts)
    assert res.n_scored > 2500
    assert res.log10_pvalue < -10, res
    wrong = detect_tokens(wm.with_key(b"bob-key"), answers, prompts=prompts)
    assert wrong.log10_pvalue > -3, wrong


def test_plain_generation_is_not_detected() -> None:
    model = _tiny_llama()
    wm = Watermark(WatermarkConfig("kgw"), key=b"alice-key", vocab_size=1000)
    prompts, answers = _generate(model, plain_generation_kwargs(0.8, 0.95))
    assert detect_tokens(wm, answers, prompts=prompts).log10_pvalue > -3


def test_aaronson_generation_is_deterministic_given_the_window() -> None:
    model = _tiny_llama()
    wm = Watermark(WatermarkConfig("aaronson", k=2), key=b"alice-key", vocab_size=1000)
    _, first = _generate(model, wm.generation_kwargs(), batch=4, new_tokens=30, seed=3)
    _, second = _generate(model, wm.generation_kwargs(), batch=4, new_tokens=30, seed=3)
    assert first == second


def test_logits_wider_than_watermark_domain() -> None:
    """Model logits wider than vocab_size: ids beyond the domain are never biased and never picked by Aaronson."""
    wm = Watermark(WatermarkConfig("kgw", k=1, delta=5.0), key=b"k", vocab_size=100, top_p=1.0)
    scores = torch.zeros(3, 128)
    input_ids = torch.tensor([[5], [6], [7]])
    out = wm.logits_processor()(input_ids, scores.clone())
    green = wm.green_mask(input_ids)
    probs = out.exp()
    assert torch.all(probs[:, 100:][probs[:, 100:] > 0] < probs[:, :100].max())
    assert torch.all(probs[:, :100][green] > probs[:, :100][~green].max())
    aar = Watermark(WatermarkConfig("aaronson", k=1), key=b"k", vocab_size=100).logits_processor()(
        input_ids, scores.clone()
    )
    assert torch.all(aar.argmax(-1) < 100)


def test_three_bricks_generation_matches_reference_sampler() -> None:
    """three_bricks mode: the KGW bias and the Aaronson choice equal the reference algorithm's."""
    vocab, seed, k = 300, 99, 2
    logits = torch.randn(4, vocab, generator=torch.Generator().manual_seed(0)) * 2
    input_ids = torch.randint(0, vocab, (4, 5), generator=torch.Generator().manual_seed(1))
    aar = Watermark(
        WatermarkConfig("aaronson", k=k, hashing="three_bricks"),
        key=seed,
        vocab_size=vocab,
        temperature=0.8,
        top_p=0.95,
    )
    chosen = aar.logits_processor()(input_ids, logits.clone()).argmax(-1).tolist()
    expected = [
        reference_aaronson_choice(seed, row[-k:], logits[i], 0.8, 0.95) for i, row in enumerate(input_ids.tolist())
    ]
    assert chosen == expected
    kgw = Watermark(
        WatermarkConfig("kgw", k=k, gamma=0.25, delta=2.0, hashing="three_bricks"),
        key=seed,
        vocab_size=vocab,
        top_p=1.0,
    )
    out = kgw.logits_processor()(input_ids, logits.clone())
    for i, row in enumerate(input_ids.tolist()):
        green = torch.tensor([reference_kgw_green(seed, row[-k:], v, 0.25, vocab) for v in range(vocab)])
        expected_lp = torch.log_softmax((logits[i] + 2.0 * green) / 0.8, dim=-1)
        torch.testing.assert_close(out[i], expected_lp, rtol=1e-5, atol=1e-5)
