"""Keyed hashing: vectorised generation and detection views agree, and three_bricks mode matches the reference."""

from __future__ import annotations

import pytest
import torch
from reference_three_bricks import reference_aaronson_score, reference_kgw_green

from radio.watermark import Watermark, WatermarkConfig


@pytest.mark.parametrize("scheme", ["kgw", "aaronson"])
@pytest.mark.parametrize("hashing", ["radio", "three_bricks"])
@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_vocab_view_equals_pair_view(scheme: str, hashing: str, k: int) -> None:
    vocab = 500
    wm = Watermark(WatermarkConfig(scheme, k=k, hashing=hashing), key=12345, vocab_size=vocab)
    gen = torch.Generator().manual_seed(0)
    windows = torch.randint(0, vocab, (6, k), generator=gen)
    table = wm.vocab_uniforms(windows)
    assert table.shape == (6, vocab)
    tokens = torch.randint(0, vocab, (6,), generator=gen)
    pairs = wm.hasher.pair_uniforms(windows, tokens, vocab)
    assert torch.equal(pairs, table[torch.arange(6), tokens])


def test_green_fraction_and_key_dependence() -> None:
    wm = Watermark(WatermarkConfig("kgw", k=2, gamma=0.25), key=b"alice", vocab_size=32000)
    windows = torch.randint(0, 32000, (64, 2), generator=torch.Generator().manual_seed(1))
    green = wm.green_mask(windows)
    assert abs(green.float().mean().item() - 0.25) < 0.005
    other = wm.with_key(b"bob").green_mask(windows)
    agreement = (green == other).float().mean().item()
    assert abs(agreement - (0.25**2 + 0.75**2)) < 0.01  # independent lists under another key
    # k = 0: one fixed green list whatever the context
    fixed = Watermark(WatermarkConfig("kgw", k=0), key=b"alice", vocab_size=1000)
    assert torch.equal(fixed.green_mask(windows[:3, :0])[0], fixed.green_mask(windows[:3, :0])[2])


@pytest.mark.parametrize("seed", [0, 42, 2**40 + 7])
def test_three_bricks_kgw_matches_reference(seed: int) -> None:
    vocab, gamma, k = 1000, 0.25, 2
    wm = Watermark(WatermarkConfig("kgw", k=k, gamma=gamma, hashing="three_bricks"), key=seed, vocab_size=vocab)
    gen = torch.Generator().manual_seed(seed % 1000)
    windows = torch.randint(0, vocab, (40, k), generator=gen)
    tokens = torch.randint(0, vocab, (40,), generator=gen)
    ours = wm.score_pairs(windows, tokens)
    expected = [
        float(reference_kgw_green(seed, w, t, gamma, vocab))
        for w, t in zip(windows.tolist(), tokens.tolist(), strict=False)
    ]
    assert ours.tolist() == expected
    assert wm.threshold == int(gamma * vocab) / vocab


@pytest.mark.parametrize("seed", [0, 1234])
def test_three_bricks_aaronson_matches_reference(seed: int) -> None:
    vocab, k = 777, 3
    wm = Watermark(WatermarkConfig("aaronson", k=k, hashing="three_bricks"), key=seed, vocab_size=vocab)
    gen = torch.Generator().manual_seed(5)
    windows = torch.randint(0, vocab, (30, k), generator=gen)
    tokens = torch.randint(0, vocab, (30,), generator=gen)
    ours = wm.score_pairs(windows, tokens)
    expected = torch.tensor(
        [reference_aaronson_score(seed, w, t, vocab) for w, t in zip(windows.tolist(), tokens.tolist(), strict=False)],
        dtype=torch.float64,
    )
    # The reference computes -log(1 - r) in float32; the uniforms themselves are identical.
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)


def test_three_bricks_requires_integer_key() -> None:
    with pytest.raises(ValueError, match="key"):
        Watermark(WatermarkConfig("kgw", hashing="three_bricks"), key=b"bytes", vocab_size=10)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"scheme": "nope"}, "scheme"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": 1.0}, "gamma"),
        ({"k": -1}, "k"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"hashing": "md5"}, "hashing"),
        ({"top_p": 0.0}, "top_p"),
    ],
)
def test_invalid_parameters_name_the_field(kwargs: dict, field: str) -> None:
    runtime = {"key": 1, "vocab_size": 100, **{k: v for k, v in kwargs.items() if k in ("vocab_size", "top_p")}}
    config = {k: v for k, v in kwargs.items() if k not in runtime}
    with pytest.raises(ValueError, match=field):
        Watermark(WatermarkConfig(**config), **runtime)


def test_config_from_dict_rejects_unknown_keys_naming_them() -> None:
    assert WatermarkConfig.from_dict({"scheme": "aaronson", "k": 1}).scheme == "aaronson"
    with pytest.raises(ValueError, match="temperature"):
        WatermarkConfig.from_dict({"temperature": 0.8})


def test_repr_and_spec_never_show_the_key() -> None:
    wm = Watermark(WatermarkConfig("kgw"), key=b"very-secret-key-material", vocab_size=100)
    assert "very-secret" not in repr(wm)
    assert "very-secret" not in str(wm.public_dict())
    assert wm.public_dict()["key_fingerprint"] == wm.fingerprint
