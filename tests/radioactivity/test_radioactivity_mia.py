"""MIA baseline: per-sample scores against an independent computation, and the KS test at d = 1 and d = 0."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from radio_synthetic import looks_uniform, uniformity

from radio.detect.mia import SampleScores, answer_log_probs, mia_test, sample_scores, zlib_length
from radio.train.toy import build_toy_base


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory: pytest.TempPathFactory):
    from radio.models import load_model

    return load_model(build_toy_base(tmp_path_factory.mktemp("mia") / "base", vocab_size=256, seed=0))


def test_answer_log_probs_match_the_model_loss(toy_model) -> None:
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, 256, n).tolist() for n in (5, 9, 1)]
    answers = [rng.integers(3, 256, n).tolist() for n in (7, 3, 12)]
    got = answer_log_probs(toy_model, prompts, answers, batch_size=2)
    for prompt, answer, log_probs in zip(prompts, answers, got, strict=True):
        ids = torch.tensor([prompt + answer])
        labels = torch.tensor([[-100] * len(prompt) + answer])
        with torch.no_grad():
            loss = toy_model(input_ids=ids, labels=labels).loss  # HF mean NLL over the answer tokens
        n_predicted = len(answer) - (1 if not prompt else 0)
        assert log_probs.shape == (n_predicted,)
        assert -log_probs.mean() == pytest.approx(float(loss), rel=1e-5)


def test_sample_scores_zlib_and_min_k(toy_model) -> None:
    rng = np.random.default_rng(1)
    prompts = [rng.integers(3, 256, 4).tolist() for _ in range(6)]
    answers = [rng.integers(3, 256, 10).tolist() for _ in range(6)]
    texts = [f"answer number {i} " * (i + 1) for i in range(6)]
    scores = sample_scores(toy_model, prompts, answers, texts, min_k_fraction=0.2, batch_size=4)
    log_probs = answer_log_probs(toy_model, prompts, answers)
    for i in range(6):
        loss = -log_probs[i].mean()
        assert scores.loss[i] == pytest.approx(loss)
        assert scores.zlib[i] == pytest.approx(loss / len(zlib.compress(texts[i].encode())))
        assert scores.min_k[i] == pytest.approx(np.sort(log_probs[i])[:2].mean())  # 20% of 10 tokens
    assert zlib_length([1, 2, 3]) == len(zlib.compress(np.array([1, 2, 3], dtype="<i4").tobytes()))
    with pytest.raises(ValueError, match="no sample"):
        sample_scores(toy_model, [[1]], [[]])


def _scores(values: np.ndarray) -> SampleScores:
    return SampleScores(values, values, -values, np.full(values.size, 10))


def test_ks_detects_members_at_d1_and_is_uniform_at_d0() -> None:
    rng = np.random.default_rng(2)
    members = _scores(rng.normal(0.8, 0.1, 100))  # B fits its training samples better: lower calibrated loss
    fresh = _scores(rng.normal(1.0, 0.1, 100))
    assert mia_test(members, fresh, "zlib", d=1.0).log10_pvalue < -10
    pvalues = [
        mia_test(_scores(rng.normal(1.0, 0.1, 50)), _scores(rng.normal(1.0, 0.1, 50)), "zlib", d=0.0).pvalue
        for _ in range(200)
    ]
    # the exact KS p-values of 50 vs 50 samples are discrete: valid means never anti-conservative
    assert looks_uniform(pvalues, discrete=True), uniformity(pvalues, discrete=True)
    assert 0.4 < np.mean(pvalues) < 0.7
    with pytest.raises(ValueError, match="score"):
        mia_test(members, fresh, "perplexity")
