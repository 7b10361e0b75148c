"""Bob's token-level rewrite with his base model B: strength 0 and 1, shares in between, seeds, the cached stage."""

from __future__ import annotations

import datasets
import pytest
from conftest import Generated

from radio.config import ConfigError
from radio.data import GenerateConfig
from radio.data.generate import cpu_threads
from radio.data.paraphrase import ParaphraseConfig, paraphrase, rewrite_answers, rewrite_mask
from radio.models import load_tokenizer
from radio.models.loading import load_model


@pytest.fixture(scope="module")
def answers(generated: Generated) -> tuple[object, object, datasets.Dataset]:
    """Model B, its tokenizer and A's watermarked answers (48 records of at most 16 tokens)."""
    model_dir = generated.prepared.base_b_dir
    data = datasets.load_from_disk(str(generated.watermarked.path / "data"))
    return load_model(model_dir), load_tokenizer(model_dir), data


def _rewrite(answers: tuple, strength: float, seed: int = 0) -> tuple[list[list[int]], list[list[bool]]]:
    model, tokenizer, data = answers
    cfg = ParaphraseConfig(strength=strength, seed=seed, batch_size=20)  # 48 records: a ragged last batch too
    with cpu_threads(GenerateConfig(), model):  # 1 thread for a tiny model, as the stage runs it
        out, masks, _ = rewrite_answers(model, tokenizer, data["prompt_ids"], data["answer_ids"], data["id"], cfg)
    return out, masks


def test_strength_zero_keeps_every_answer_and_one_rewrites_every_position(answers: tuple) -> None:
    data = answers[2]
    same, masks = _rewrite(answers, 0.0)
    assert same == data["answer_ids"] and not any(any(m) for m in masks)
    new, masks = _rewrite(answers, 1.0)
    assert [len(a) for a in new] == [len(a) for a in data["answer_ids"]]
    assert all(all(m) and len(m) == len(a) for m, a in zip(masks, data["answer_ids"], strict=True))
    eos = answers[1].eos_token_id
    assert all(eos not in a for a in new)
    changed = sum(x != y for a, b in zip(new, data["answer_ids"], strict=True) for x, y in zip(a, b, strict=True))
    assert changed > 0.3 * sum(map(len, new))  # B's own tokens, not A's


def test_an_intermediate_strength_rewrites_about_that_share_and_keeps_a_elsewhere(answers: tuple) -> None:
    data = answers[2]
    new, masks = _rewrite(answers, 0.4)
    cells = [c for m in masks for c in m]
    assert abs(sum(cells) / len(cells) - 0.4) < 0.07  # about 700 cells: sd 0.019
    for a, b, m in zip(new, data["answer_ids"], masks, strict=True):
        assert len(a) == len(b)
        assert all(x == y for x, y, rewritten in zip(a, b, m, strict=True) if not rewritten)
    # The same uniforms at every strength: the cells rewritten at 0.2 are among those rewritten at 0.4.
    smaller = [rewrite_mask(r, len(a), 0.2, 0) for r, a in zip(data["id"], data["answer_ids"], strict=True)]
    assert all(not s or m for sm, mm in zip(smaller, masks, strict=True) for s, m in zip(sm, mm, strict=True))


def test_same_seed_same_rewrite_other_seed_another(answers: tuple) -> None:
    first, _ = _rewrite(answers, 0.6, seed=3)
    again, _ = _rewrite(answers, 0.6, seed=3)
    other, _ = _rewrite(answers, 0.6, seed=4)
    assert first == again
    assert first != other


def test_the_stage_is_cached_and_records_shares(generated: Generated) -> None:
    train = generated.watermarked.path / "data"
    cfg = ParaphraseConfig(strength=0.5, batch_size=48)
    out = paraphrase(cfg, train, generated.prepared.base_b_dir, generated.root)
    rewritten = datasets.load_from_disk(str(out.path / "train"))
    original = datasets.load_from_disk(str(train))
    assert rewritten["prompt_ids"] == original["prompt_ids"] and rewritten["id"] == original["id"]
    assert [len(a) for a in rewritten["answer_ids"]] == [len(a) for a in original["answer_ids"]]
    tokenizer = load_tokenizer(generated.prepared.base_b_dir)
    assert rewritten[0]["answer"] == tokenizer.decode(rewritten[0]["answer_ids"], skip_special_tokens=True)
    assert all(0.0 <= s <= 1.0 for s in rewritten["rewritten_share"])
    counts = out.manifest["counts"]
    assert 0.35 < counts["rewritten_share"] < 0.65 and counts["records"] == len(original)
    assert 0.0 < counts["pairs_k1_kept_in_place_share"] < 1.0
    assert counts["pairs_k1_kept_in_place_share"] <= counts["distinct_pairs_k1_surviving_share"] + 0.2
    again = paraphrase(ParaphraseConfig(strength=0.5, batch_size=48, device="cpu", num_threads=1), train,
                       generated.prepared.base_b_dir, generated.root)  # fmt: skip
    assert again.cached and again.hash == out.hash
    with pytest.raises(ConfigError, match=r"paraphrase\.strength"):
        ParaphraseConfig(strength=1.5)
