"""Model presets: exact parameter counts, deterministic initialisation, clear errors."""

from __future__ import annotations

import pytest
import torch

from radio.config import ConfigError
from radio.models import PRESETS, build_model, count_parameters, get_preset, model_vocab_size


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_parameter_count_at_default_vocab(name: str) -> None:
    model = build_model(name, vocab_size=2048, seed=0)
    assert count_parameters(model) == PRESETS[name].params_at_2048
    assert model_vocab_size(model) == 2048


def test_presets_are_ordered_by_size() -> None:
    sizes = [PRESETS[name].params_at_2048 for name in ("tiny-0.5m", "tiny-1m", "tiny-4m")]
    assert sizes == sorted(sizes)
    assert 0.4e6 < sizes[0] < 0.6e6 and 0.9e6 < sizes[1] < 1.2e6 and 3e6 < sizes[2] < 5e6


def test_build_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("tiny-0.5m", vocab_size=300, seed=7)
    after = torch.rand(1)
    b = build_model("tiny-0.5m", vocab_size=300, seed=7)
    c = build_model("tiny-0.5m", vocab_size=300, seed=8)
    assert torch.equal(before, after)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


def test_unknown_preset_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"preset.*tiny-1m"):
        get_preset("huge-70b")
