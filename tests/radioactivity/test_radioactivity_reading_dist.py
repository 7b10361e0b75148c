"""The distribution-based open-model test (`open-dist`): mechanics, and its validity under H0 over >= 300 keys.

Calibration scenarios (clean models, both schemes, both hashers, V = 2,048 k = 1 and V = 32,000 k = 2, a model that
copies its context on text watermarked with the tested key, text that loops, a model that learned another key):
the false-positive rate at 0.05 and 0.01 must not exceed the upper end of the binomial 99.9% interval (the Chernoff
bound is conservative, so the rate is usually below nominal), and the standardised statistic (T - E T) / sd must
have mean near 0 over the keys: a leak of the key into the weights shows there first. The copying model without the
in-sequence exclusion is the negative control: there the same checks fail.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from radio_soft import BigramModel, ContextModel, LearnedKeyModel, looped, watermarked_text
from scipy import stats

from radio import Watermark, WatermarkConfig
from radio.detect.open_model import ReadingPass, _reduce_logits, open_model_test, read_texts, top_m_values
from radio.detect.open_model_dist import open_model_dist_test, window_mass
from radio.detect.phi import build_phi
from radio.detect.result import derive_key

N_KEYS = 300
_SEQ = 96


def _wm(scheme: str = "kgw", k: int = 1, vocab: int = 2048, key: int | bytes = b"alice", hashing: str = "radio"):
    config = WatermarkConfig(scheme, k=k, gamma=0.25, delta=2.0, hashing=hashing)
    return Watermark(config, key=key, vocab_size=vocab)


def _upper(alpha: float, n: int = N_KEYS) -> int:
    """Largest false-positive count inside the binomial 99.9% interval."""
    return int(stats.binom.ppf(0.9995, n, alpha))


def _summary(results: list) -> tuple[np.ndarray, np.ndarray]:
    """(p-values, standardised statistics) of a list of results."""
    p = np.array([r.pvalue for r in results])
    z = np.array([(r.detection.statistic - r.detection.h0["mean"]) / r.detection.h0["sd"] for r in results])
    return p, z


def _assert_calibrated(results: list) -> None:
    p, z = _summary(results)
    n = len(results)
    assert n >= N_KEYS
    for alpha in (0.05, 0.01):
        assert int((p <= alpha).sum()) <= _upper(alpha, n), (alpha, np.sort(p)[:10])
    assert abs(z.mean()) < 4.0 / math.sqrt(n), z.mean()  # 4 standard errors
    assert 0.7 < z.std() < 1.2, z.std()


def _wrong_keys(wm: Watermark, reading: ReadingPass, **kwargs: object) -> list:
    mass = window_mass(wm, reading, **kwargs)  # key-independent: once for all keys
    keys = [wm.with_key(derive_key(b"alice", i)) for i in range(N_KEYS)]
    return [open_model_dist_test(w, reading, mass=mass, curve_points=0, **kwargs) for w in keys]


def test_top_m_pass_keeps_the_argmax_and_the_sorted_softmax() -> None:
    model = BigramModel(300, seed=0)
    texts = [list(range(5, 60)), list(range(100, 140))]
    plain = read_texts(model, texts, k=1, seq_len=32)
    rich = read_texts(model, texts, k=1, seq_len=32, top_m=8)
    assert plain.top_m == 0 and plain.top_probs is None and rich.top_m == 8
    assert torch.equal(plain.predictions, rich.predictions) and torch.equal(plain.windows, rich.windows)
    assert rich.top_ids.dtype == torch.int16 and rich.top_probs.dtype == torch.float16
    probs = torch.softmax(model.table[torch.tensor(texts[0])], dim=1)
    top = probs.topk(8, dim=1)
    assert torch.equal(rich.top_ids[: len(texts[0])].long(), top.indices)
    assert torch.allclose(rich.top_probs[: len(texts[0])].float(), top.values, rtol=2e-3, atol=1e-6)
    small = rich.truncated(3)
    assert small.top_m == 3 and torch.equal(small.top_ids, rich.top_ids[:, :3])
    assert rich.truncated(0).top_probs is None
    with pytest.raises(ValueError, match="top_m"):
        plain.truncated(2)


def test_top1_is_the_first_maximal_index_with_or_without_top_m_even_on_ties() -> None:
    logits = torch.randn(64, 500)
    logits[::3, 7] = logits[::3, 400] = logits[::3].max() + 1.0  # rows whose two best logits tie: argmax takes 7
    logits[1, :] = 0.0  # a row tied everywhere
    expected = logits.argmax(dim=-1)
    for top_m in (0, 1, 2, 8):
        top1, _, _ = _reduce_logits(logits, top_m)
        assert torch.equal(top1, expected), top_m


@pytest.mark.parametrize("width", [5, 64, 513, 2048, 4097, 32000, 32003])
@pytest.mark.parametrize("m", [1, 8, 64])
def test_folded_top_m_gives_topks_values_and_ids_of_those_values(width: int, m: int) -> None:
    generator = torch.Generator().manual_seed(width * 100 + m)
    values = torch.randn(37, width, generator=generator) * 4
    values[::5] = values[::5].round()  # rows with many exact ties
    values[3, -1] = values[3].max() + 1.0  # the best entry in the last (padded) column
    expected = values.topk(min(m, width), dim=-1, sorted=True).values
    top, ids = top_m_values(values, m)
    assert torch.equal(top, expected)
    assert torch.equal(values.gather(1, ids), top)  # ids point at those values
    assert all(len(set(row)) == len(row) for row in ids.tolist())  # no id twice in a row


def test_top_m_probabilities_are_softmaxs() -> None:
    logits = torch.randn(3, 7, 3000) * 5
    _, probs, ids = _reduce_logits(logits, 16)
    expected = torch.softmax(logits, dim=-1).topk(16, dim=-1)
    assert torch.allclose(probs.float(), expected.values, rtol=2e-3, atol=1e-6)
    assert torch.equal(ids.long(), expected.indices)


def test_window_mass_is_the_mean_of_in_domain_top_m_probabilities() -> None:
    wm = _wm(vocab=40)
    model = BigramModel(50, seed=1)  # logits wider than the watermark domain: ids 40..49 are never scored
    texts = [[1, 2, 3, 4], [1, 5, 1, 6]]
    reading = read_texts(model, texts, k=1, seq_len=4, top_m=6)  # two chunks: window 1 is fresh in both
    mass = window_mass(wm, reading)
    # eligible: chunk 0 windows 1, 2, 3, 4; chunk 1 windows 1, 5, 6 (the second 1 repeats in its chunk)
    assert mass.n_eligible == 7 and mass.n_lists == 6
    assert mass.windows[:, 0].tolist() == [1, 2, 3, 4, 5, 6] and mass.positions.tolist() == [2, 1, 1, 1, 1, 1]
    top = torch.softmax(model.table[1], dim=0).topk(6)
    expected = {int(i): float(v) for i, v in zip(top.indices, top.values, strict=True) if i < 40}
    first = mass.entry_list == 0
    got = {int(t): float(w) for t, w in zip(mass.entry_token[first], mass.weight[first], strict=True)}
    assert got.keys() == expected.keys()
    assert all(got[t] == pytest.approx(expected[t], rel=2e-3) for t in got)  # mean of two equal rows
    summed = window_mass(wm, reading, weighting="sum")
    assert summed.weight[summed.entry_list == 0].sum() == pytest.approx(2 * mass.weight[mass.entry_list == 0].sum())
    off = window_mass(wm, reading, in_sequence_exclusion=False)
    assert off.n_eligible == 8 and off.positions[0] == 3


def test_result_counts_record_and_curve() -> None:
    wm = _wm(vocab=256)
    texts = watermarked_text(wm, n_texts=6, length=80, seed=0)
    reading = read_texts(LearnedKeyModel(wm, seed=2), texts, k=1, seq_len=128, top_m=16)
    result = open_model_dist_test(wm, reading)
    d = result.detection
    assert result.setting == "open-dist" and d.test == "open-dist" and d.dedup == "window"
    assert d.n_seen == 480 and d.n_scored == len(np.unique(reading.windows[reading.fresh_in_sequence])) <= 256
    assert d.n_eligible == int((reading.has_window & reading.fresh_in_sequence).sum())
    assert "Chernoff" in d.h0["bound"] and d.h0["mean"] > 0 and d.statistic > d.h0["mean"]
    assert result.log10_pvalue < 2 * open_model_test(wm, reading).log10_pvalue < -20  # it beats top-1 reading
    curve = np.array(result.curve)
    assert curve[-1, 0] == d.n_scored and curve[-1, 1] == pytest.approx(result.log10_pvalue)
    row = result.to_dict()
    assert row["top_m"] == 16 and row["weighting"] == "mean" and row["setting"] == "open-dist"


@pytest.mark.parametrize("scheme", ["kgw", "aaronson"])
def test_clean_model_wrong_keys_v2048_k1(scheme: str) -> None:
    wm = _wm(scheme, vocab=2048)
    base = BigramModel(2048, seed=1).table
    texts = watermarked_text(_wm("kgw", vocab=2048), n_texts=8, length=120, seed=0, base=base)
    reading = read_texts(BigramModel(2048, seed=2), texts, k=1, seq_len=256, top_m=32)
    _assert_calibrated(_wrong_keys(wm, reading))
    phi = build_phi(texts, k=1, top_n=300)
    _assert_calibrated(_wrong_keys(wm, reading, phi=phi))


@pytest.mark.parametrize("scheme", ["kgw", "aaronson"])
def test_clean_transformer_wrong_keys_v32000_k2(scheme: str) -> None:
    from radio.models import build_model

    model = build_model("tiny-0.5m", vocab_size=32000, seed=0).eval()
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(40.0)  # sharper, uneven distributions (still key-free)
    wm = _wm(scheme, k=2, vocab=32000)
    texts = watermarked_text(_wm("kgw", k=2, vocab=32000), n_texts=4, length=100, seed=1)
    reading = read_texts(model, texts, k=2, seq_len=128, top_m=32)
    assert window_mass(wm, reading).mass_covered > 0.05
    _assert_calibrated(_wrong_keys(wm, reading))


@pytest.mark.parametrize("scheme", ["kgw", "aaronson"])
def test_three_bricks_fixed_size_lists_wrong_keys(scheme: str) -> None:
    wm = _wm(scheme, vocab=128, key=7, hashing="three_bricks")
    texts = watermarked_text(_wm("kgw", vocab=128), n_texts=2, length=50, seed=2)
    reading = read_texts(BigramModel(128, seed=3), texts, k=1, seq_len=128, top_m=32)
    mass = window_mass(wm, reading)
    results = [open_model_dist_test(wm.with_key(1000 + i), reading, mass=mass, curve_points=0) for i in range(N_KEYS)]
    _assert_calibrated(results)


def _slice(reading: ReadingPass, start: int, stop: int) -> ReadingPass:
    """Positions start..stop of a reading pass (whole chunks), as a pass of their own."""
    fields = ("windows", "predictions", "has_window", "fresh_in_sequence", "top_probs", "top_ids")
    return dataclasses.replace(reading, **{f: getattr(reading, f)[start:stop] for f in fields})


def _correct_key_runs(
    scheme: str,
    model: torch.nn.Module,
    text: Callable[[Watermark, int], list[list[int]]],
    exclusion: bool = True,
    n_keys: int = N_KEYS,
) -> list:
    """H0 with the CORRECT key: fresh text watermarked with each key, read by a model that never saw a key.

    Every key's texts fill whole chunks of `_SEQ` tokens (no separator), so one batched read serves all keys and
    each key's slice is exactly the pass it would get alone.
    """
    keys = [_wm(scheme, vocab=128, key=f"key-{i}".encode()) for i in range(n_keys)]
    texts = [text(wm, i) for i, wm in enumerate(keys)]
    assert all(len(t) == _SEQ for ts in texts for t in ts)
    reading = read_texts(model, [t for ts in texts for t in ts], k=1, seq_len=_SEQ, top_m=32)
    out, start = [], 0
    for wm, ts in zip(keys, texts, strict=True):
        stop = start + _SEQ * len(ts)
        part = _slice(reading, start, stop)
        out.append(open_model_dist_test(wm, part, in_sequence_exclusion=exclusion, curve_points=0))
        start = stop
    return out


def test_a_model_that_copies_its_context_is_not_radioactive_kgw() -> None:
    model = ContextModel(128)
    runs = _correct_key_runs("kgw", model, lambda wm, i: watermarked_text(wm, n_texts=4, length=96, seed=i))
    _assert_calibrated(runs)
    # negative control: without the in-sequence exclusion the copier reads the green tokens it has seen
    fails = _correct_key_runs(
        "kgw", model, lambda wm, i: watermarked_text(wm, n_texts=4, length=96, seed=i), exclusion=False, n_keys=60
    )
    p, z = _summary(fails)
    assert z.mean() > 3 and (p <= 0.01).mean() > 0.5


def test_looping_text_and_a_copying_model_aaronson() -> None:
    """Aaronson text is deterministic given the window: at k = 1 it falls into loops; looped() makes it worse."""
    runs = _correct_key_runs(
        "aaronson",
        ContextModel(128),
        lambda wm, i: [t[:_SEQ] for t in looped(watermarked_text(wm, n_texts=4, length=60, seed=i), 12, 4)],
    )
    _assert_calibrated(runs)


def test_looping_kgw_text_read_by_a_clean_model() -> None:
    runs = _correct_key_runs(
        "kgw",
        BigramModel(128, seed=4),
        lambda wm, i: [t[:_SEQ] for t in looped(watermarked_text(wm, n_texts=4, length=60, seed=i), 8, 6)],
    )
    _assert_calibrated(runs)


def test_a_model_that_learned_another_key_stays_uniform_under_the_tested_key() -> None:
    other = _wm(vocab=512, key=b"someone-else")
    model = LearnedKeyModel(other, seed=5)
    texts = watermarked_text(_wm(vocab=512), n_texts=8, length=120, seed=3)
    reading = read_texts(model, texts, k=1, seq_len=128, top_m=32)
    assert open_model_dist_test(other, reading).log10_pvalue < -20  # it did learn that key's watermark
    _assert_calibrated(_wrong_keys(_wm(vocab=512), reading))  # Alice's key and its derived keys


def test_actor_shares_one_reading_pass_and_keeps_the_open_numbers(tmp_path: Path) -> None:
    import types

    import datasets

    from radio.detect.actor import DetectionActor

    vocab = 256
    wm = _wm(vocab=vocab)
    texts = watermarked_text(wm, n_texts=10, length=60, seed=4)
    mix = tmp_path / "mix"
    datasets.Dataset.from_dict({"prompt_ids": [[1, 2]] * len(texts), "answer_ids": texts}).save_to_disk(
        str(mix / "heldout")
    )

    class Counting(LearnedKeyModel):
        calls = 0

        def forward(self, input_ids: torch.Tensor, **kw: object) -> types.SimpleNamespace:
            Counting.calls += 1
            return super().forward(input_ids, **kw)

        def get_output_embeddings(self) -> types.SimpleNamespace:
            return types.SimpleNamespace(weight=torch.zeros(vocab, 1))

    tokenizer = types.SimpleNamespace(eos_token_id=0, pad_token_id=0)

    def actor(**kw: object) -> DetectionActor:
        return DetectionActor(
            tmp_path, wm.config.to_dict(), key=b"alice", data=mix, model=Counting(wm), tokenizer=tokenizer, **kw
        )

    specs = [
        {"setting": "open"},
        {"setting": "open", "key": "wrong"},
        {"setting": "open-dist", "top_m": 16},
        {"setting": "open-dist", "top_m": 16, "key": "wrong", "wrong_key_index": 2},
        {"setting": "open-dist", "top_m": 8, "phi": 50},
    ]
    Counting.calls = 0
    shared = actor().run_all(specs)
    calls_shared = Counting.calls
    Counting.calls = 0
    alone = actor().run_all(specs[:2])
    assert calls_shared == Counting.calls  # one forward pass served the top-1 and the distribution tests
    for a, b in zip(shared[:2], alone, strict=True):
        assert a["log10_pvalue"] == b["log10_pvalue"] and a["n_scored"] == b["n_scored"]
    assert shared[2]["log10_pvalue"] < -5 and shared[2]["control"] == "none" and shared[3]["control"] == "wrong-key"
    assert shared[3]["log10_pvalue"] > -3 and shared[4]["phi_size"] == 50 and shared[4]["top_m"] == 8
    # run alone, the distribution test gives the same numbers as beside the top-1 test
    Counting.calls = 0
    single = actor().run(specs[2])
    assert single["log10_pvalue"] == shared[2]["log10_pvalue"]
