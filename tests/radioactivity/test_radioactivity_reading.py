"""Open-model test (reading mode) on fake models with known behaviour: mechanics, counts, and calibration under H0.

Fast and CPU-only. The calibration tests can fail: they do when the in-sequence exclusion or the tape is removed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from radio_synthetic import CopyingModel, GreenOracle, PeekingModel, looks_uniform, uniformity, watermarked_markov

from radio import Watermark, WatermarkConfig, detect_tokens
from radio.detect.open_model import open_model_test, pack_texts, read_texts
from radio.detect.phi import build_phi
from radio.detect.result import derive_key


def _wm(key: int | bytes = 11, k: int = 1, vocab: int = 128) -> Watermark:
    return Watermark(WatermarkConfig("kgw", k=k, gamma=0.25, delta=4.0), key=key, vocab_size=vocab)


def test_pack_texts_separators_padding_and_doc_ids() -> None:
    chunks, doc, n_real = pack_texts([[5, 6, 7], [8, 9]], seq_len=4, separator_id=1, pad_id=0)
    assert chunks.tolist() == [[5, 6, 7, 1], [8, 9, 1, 0]]
    assert doc.tolist() == [0, 0, 0, -1, 1, 1, -1, -2]
    assert n_real == 7
    with pytest.raises(ValueError, match="nothing to read"):
        pack_texts([[], []], seq_len=4, separator_id=None)


def test_windows_come_from_the_input_and_repeats_in_a_chunk_are_excluded() -> None:
    wm = _wm(k=2, vocab=50)
    texts = [[1, 2, 3, 1, 2, 3, 4], [5, 6, 7]]
    reading = read_texts(CopyingModel(50), texts, k=2, seq_len=6, separator_id=0)
    # stream: 1 2 3 1 2 3 | 4 0 5 6 7 0   (two chunks of 6, separator 0 after each text)
    assert reading.windows.tolist() == [
        [0, 1], [1, 2], [2, 3], [3, 1], [1, 2], [2, 3], [3, 4], [4, 0], [0, 5], [5, 6], [6, 7], [7, 0]
    ]  # fmt: skip
    # full window inside one text: not at chunk starts (position < k-1), never across a separator
    assert reading.has_window.tolist() == [False, True, True, True, True, True, False, False, False, True, True, False]
    # (1,2) and (2,3) were already seen in the first chunk (B's context): excluded
    assert reading.fresh_in_sequence.tolist()[:6] == [False, True, True, True, False, False]
    result = open_model_test(wm, reading)
    d = result.detection
    assert (d.n_seen, d.n_eligible) == (12, 5)
    assert d.test == "open" and d.prompt_exclusion == "in-sequence"
    off = open_model_test(wm, reading, in_sequence_exclusion=False)
    assert off.detection.n_eligible == 7 and off.in_sequence_exclusion is False
    with pytest.raises(ValueError, match="k=2"):
        open_model_test(_wm(k=1, vocab=50), reading)


def test_reading_scores_equal_text_detection_for_a_model_that_predicts_the_text() -> None:
    """With B predicting exactly x_{t+1}, reading mode is text detection of x (one shared scoring loop)."""
    wm = _wm(k=2, vocab=100)
    rng = np.random.default_rng(0)
    texts = [rng.integers(0, 100, size=n).tolist() for n in (30, 45, 12)]
    # one chunk; the separator (100) is outside the watermark domain, so predicting it is never scored
    reading = read_texts(PeekingModel(101), texts, k=2, seq_len=512, separator_id=100)
    result = open_model_test(wm, reading, in_sequence_exclusion=False)
    reference = detect_tokens(wm, texts)
    assert result.detection.n_scored == reference.n_scored
    assert result.detection.statistic == reference.statistic
    assert result.log10_pvalue == pytest.approx(reference.log10_pvalue)


def test_out_of_domain_windows_and_predictions_are_not_scored() -> None:
    wm = _wm(k=1, vocab=40)
    texts = [[1, 2, 45, 3, 4, 5, 6]]  # 45 is outside the domain
    reading = read_texts(PeekingModel(60), texts, k=1, seq_len=64)
    result = open_model_test(wm, reading, in_sequence_exclusion=False, dedup="none")
    # windows 1..6 (7 tokens); the window 45 is dropped, and the prediction 45 (after window 2) too
    assert result.detection.n_eligible == 5
    assert result.detection.n_scored == 5


def test_phi_restricts_the_scored_windows() -> None:
    wm = _wm(k=1, vocab=64)
    texts = watermarked_markov(wm, n_texts=4, length=40, seed=0)
    phi = build_phi(texts, k=1, top_n=5)
    reading = read_texts(GreenOracle(wm), texts, k=1, seq_len=64)
    result = open_model_test(wm, reading, phi=phi)
    allowed = {g[0] for g in phi.grams.tolist()}
    assert result.phi["size"] == 5 and result.detection.phi_size == 5
    assert 0 < result.detection.n_scored <= 5
    mask = reading.has_window & reading.fresh_in_sequence
    assert result.detection.n_eligible == sum(int(w[0]) in allowed for w in reading.windows[mask].tolist())


def test_result_record_is_json_able_and_has_the_curve() -> None:
    import json

    wm = _wm(k=1, vocab=128)
    texts = watermarked_markov(wm, n_texts=8, length=64, seed=1)
    result = open_model_test(wm, read_texts(GreenOracle(wm), texts, k=1, seq_len=128))
    row = json.loads(json.dumps(result.to_dict()))
    for key in (
        "pvalue",
        "log10_pvalue",
        "n_seen",
        "n_eligible",
        "n_scored",
        "setting",
        "supervision",
        "phi_size",
        "dedup",
        "score_mean",
        "tokens_per_s",
        "curve",
        "control",
        "key_fingerprint",
    ):
        assert key in row
    assert row["setting"] == "open" and row["score_mean"] == 1.0  # the oracle predicts green tokens only
    curve = np.array(row["curve"])
    assert curve[-1, 0] == row["n_scored"] and curve[-1, 1] == pytest.approx(row["log10_pvalue"])
    assert np.all(np.diff(curve[:, 1]) <= 1e-9)  # all green: evidence only grows


def test_wrong_keys_are_uniform_with_the_tape_and_not_without() -> None:
    """A maximally radioactive model: 200 wrong keys give uniform p-values; without dedup they do not."""
    wm = _wm(key=b"true-key", k=1, vocab=512)
    texts = watermarked_markov(wm, n_texts=40, length=100, seed=2)
    reading = read_texts(GreenOracle(wm), texts, k=1, seq_len=100)
    assert open_model_test(wm, reading).log10_pvalue < -100
    wrong = [wm.with_key(derive_key(b"true-key", i)) for i in range(200)]
    tape = [open_model_test(w, reading, mid_p=True).pvalue for w in wrong]
    assert looks_uniform(tape), uniformity(tape)
    no_tape = [open_model_test(w, reading, dedup="none", mid_p=True).pvalue for w in wrong]
    assert not looks_uniform(no_tape), uniformity(no_tape)


@pytest.mark.slow  # about 70 s on 2 idle cores
def test_in_context_copying_is_not_radioactivity() -> None:
    """H0, correct key, fresh watermarked text per key, a copying model: uniform only with in-sequence exclusion."""
    keys = [f"key-{i}".encode() for i in range(150)]
    with_exclusion, without = [], []
    for i, key in enumerate(keys):
        wm = _wm(key=key, k=1, vocab=128)
        reading = read_texts(CopyingModel(128), watermarked_markov(wm, n_texts=8, length=96, seed=i), k=1, seq_len=96)
        with_exclusion.append(open_model_test(wm, reading, mid_p=True).pvalue)
        without.append(open_model_test(wm, reading, in_sequence_exclusion=False, mid_p=True).pvalue)
    assert looks_uniform(with_exclusion), uniformity(with_exclusion)
    assert np.median(without) < 1e-3  # copying the watermarked context is scored as if B were radioactive


def test_read_texts_is_batched_and_deterministic() -> None:
    wm = _wm(k=1, vocab=128)
    texts = watermarked_markov(wm, n_texts=10, length=50, seed=3)
    a = read_texts(CopyingModel(128), texts, k=1, seq_len=32, batch_size=3)
    b = read_texts(CopyingModel(128), texts, k=1, seq_len=32, batch_size=64)
    assert torch.equal(a.predictions, b.predictions) and torch.equal(a.fresh_in_sequence, b.fresh_in_sequence)
    assert a.n_chunks == b.n_chunks == -(-(10 * 50) // 32)


class _WrongHead(torch.nn.Module):
    """A model whose advertised LM head is not the one its forward pass uses."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.fake_head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=False)

    def forward(self, **kwargs: object) -> object:
        return self.inner(**kwargs)

    def get_decoder(self) -> torch.nn.Module:
        return self.inner.get_decoder()

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.fake_head


def test_fused_head_predictions_equal_the_forward_pass(caplog: pytest.LogCaptureFixture) -> None:
    from radio.detect.open_model import top1_predictions
    from radio.models import build_model

    model = build_model("tiny-0.5m", vocab_size=300, seed=0).eval()
    chunks = torch.randint(0, 300, (5, 40), generator=torch.Generator().manual_seed(0))
    plain, _ = top1_predictions(model, chunks, batch_size=2, fused_head=False)
    fused, _ = top1_predictions(model, chunks, batch_size=2, fused_head=True)
    assert torch.equal(plain, fused)
    with torch.inference_mode():
        assert torch.equal(plain, model(input_ids=chunks).logits.argmax(-1))
    wrong, _ = top1_predictions(_WrongHead(model), chunks, batch_size=2)  # detected on the first batch
    assert torch.equal(wrong, plain) and "disagrees" in caplog.text
    with pytest.raises(ValueError, match="fused_head"):
        top1_predictions(CopyingModel(300), chunks, fused_head=True)
