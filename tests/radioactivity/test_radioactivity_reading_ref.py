"""The reference-calibrated reading test (`open-ref`): mechanics, its validity under H0 over >= 300 keys, its power.

The weights are B's excess over a key-independent reference model R, max(p_B - p_R, 0) at B's top-m ids. The same
calibration scenarios as the `open-dist` test (clean models under wrong keys, V = 2,048 k = 1 and V = 32,000 k = 2,
both schemes, fixed-size lists, a copying model on text watermarked with the tested key, looping text, a model that
learned another key), each with a reference that differs from B: FPR at 0.05 and 0.01 inside the binomial 99.9%
bound, standardised statistic centred. And the reason for the test: on a model that inherited a weak tilt, the
excess over R detects what B's raw mass does not.
"""

from __future__ import annotations

import copy
import math
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from radio_soft import BigramModel, ContextModel, LearnedKeyModel, looped, watermarked_text
from test_radioactivity_reading_dist import N_KEYS, _assert_calibrated, _slice, _summary, _wm

from radio.detect.open_model import ReadingPass, read_texts
from radio.detect.open_model_dist import open_model_dist_test, window_mass
from radio.detect.reference import reference_probs
from radio.detect.result import derive_key
from radio.watermark import Watermark

_SEQ = 96


class NoisyCopy(torch.nn.Module):
    """`base`'s logits plus a fixed key-free perturbation: what a fine-tune on clean text does to a reference."""

    def __init__(self, base: torch.nn.Module, vocab: int, seed: int, scale: float = 0.5) -> None:
        super().__init__()
        self.base = base
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("noise", scale * torch.randn(vocab, vocab, generator=gen))

    def forward(self, input_ids: torch.Tensor, **kw: object) -> types.SimpleNamespace:
        return types.SimpleNamespace(logits=self.base(input_ids).logits + self.noise[input_ids])


def save_checkpoint(folder: Path, vocab_size: int, seed: int) -> Path:
    """A tiny Llama and its own BPE tokenizer saved as a model folder (what the actor loads a reference from)."""
    from radio.data.tokenizer import TokenizerConfig, train_tokenizer
    from radio.models import build_model

    texts = [f"Return the {w} of the object, or None when it has no {w}." for w in ("name", "size", "value")] * 20
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=vocab_size, min_frequency=1))
    build_model("tiny-0.5m", vocab_size=len(tokenizer), seed=seed).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def _reference(model: torch.nn.Module, texts: list[list[int]], reading: ReadingPass) -> torch.Tensor:
    return reference_probs(model, texts, reading, batch_size=8)


def _wrong_keys(wm: Watermark, reading: ReadingPass, ref: torch.Tensor, signed: bool = False) -> list:
    mass = window_mass(wm, reading, reference=ref, weighting="sum", signed=signed)
    keys = [wm.with_key(derive_key(b"alice", i)) for i in range(N_KEYS)]
    return [open_model_dist_test(w, reading, mass=mass, curve_points=0) for w in keys]


def test_reference_probs_are_the_reference_softmax_at_b_top_ids() -> None:
    b, r = BigramModel(300, seed=0), BigramModel(300, seed=1)
    texts = [list(range(5, 60)), list(range(100, 140))]
    reading = read_texts(b, texts, k=1, seq_len=32, top_m=8)
    ref = _reference(r, texts, reading)
    assert ref.shape == reading.top_probs.shape and ref.dtype == torch.float16
    flat = torch.tensor([t for text in texts for t in text])
    expected = torch.softmax(r.table[flat], dim=1).gather(1, reading.top_ids[: flat.numel()].long())
    assert torch.allclose(ref[: flat.numel()].float(), expected, rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match="not the texts B read"):
        _reference(r, texts[:1], reading)


def test_fused_head_path_of_a_causal_lm_matches_its_softmax_and_r_equal_to_b_leaves_no_excess() -> None:
    from radio.models import build_model

    b = build_model("tiny-0.5m", vocab_size=700, seed=0).eval()
    r = build_model("tiny-0.5m", vocab_size=700, seed=3).eval()
    texts = [list(range(5, 90)), list(range(300, 340))]
    reading = read_texts(b, texts, k=1, seq_len=64, top_m=16)
    ref = _reference(r, texts, reading)  # the body once, the LM head on slices of positions
    chunks = torch.tensor(texts[0][:64])[None]
    with torch.no_grad():
        full = torch.softmax(r(input_ids=chunks).logits[0].float(), dim=-1)
    expected = full.gather(1, reading.top_ids[:64].long())
    assert torch.allclose(ref[:64].float(), expected, rtol=2e-3, atol=1e-6)
    wm = _wm(vocab=700)
    assert window_mass(wm, reading, reference=_reference(b, texts, reading)).weight.size == 0


def test_weights_are_b_excess_over_the_reference_and_vanish_when_r_is_b() -> None:
    wm = _wm(vocab=300)
    b, r = BigramModel(300, seed=0), BigramModel(300, seed=1)
    texts = watermarked_text(wm, n_texts=3, length=60, seed=0)
    reading = read_texts(b, texts, k=1, seq_len=64, top_m=16)
    ref = _reference(r, texts, reading)
    plain = window_mass(wm, reading, weighting="sum")
    excess = window_mass(wm, reading, weighting="sum", reference=ref)
    assert excess.reference and not plain.reference and excess.n_lists == plain.n_lists
    assert excess.weight.sum() < plain.weight.sum() and (excess.weight > 0).all()
    # one window by hand: the summed excess of its positions, token by token
    eligible = np.flatnonzero(np.isin(reading.windows.numpy()[:, 0], excess.windows[0]) & _eligible(wm, reading))
    by_token: dict[int, float] = {}
    for i in eligible:
        for v, p, q in zip(reading.top_ids[i].tolist(), reading.top_probs[i].tolist(), ref[i].tolist(), strict=True):
            by_token[v] = by_token.get(v, 0.0) + max(p - q, 0.0)
    first = excess.entry_list == 0
    got = dict(zip(excess.entry_token[first].tolist(), excess.weight[first].tolist(), strict=True))
    assert got == pytest.approx({v: w for v, w in by_token.items() if w > 0}, rel=1e-6)
    same = window_mass(wm, reading, reference=_reference(b, texts, reading))
    result = open_model_dist_test(wm, reading, mass=same)
    assert same.weight.size == 0 and result.pvalue == 1.0 and result.setting == "open-ref"
    assert "excess" in str(result.detection.h0["weights"])


def _eligible(wm: Watermark, reading: ReadingPass) -> np.ndarray:
    from radio.detect.open_model import eligible_positions

    return eligible_positions(wm, reading, None, True).numpy()


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("scheme", ["kgw", "aaronson"])
def test_clean_models_wrong_keys_v2048_k1(scheme: str, signed: bool) -> None:
    wm = _wm(scheme, vocab=2048)
    base = BigramModel(2048, seed=1).table
    texts = watermarked_text(_wm("kgw", vocab=2048), n_texts=8, length=120, seed=0, base=base)
    b = BigramModel(2048, seed=2)
    for r in (BigramModel(2048, seed=3), NoisyCopy(b, 2048, seed=4)):  # another model; B "fine-tuned" clean
        reading = read_texts(b, texts, k=1, seq_len=256, top_m=32)
        _assert_calibrated(_wrong_keys(wm, reading, _reference(r, texts, reading), signed))


@pytest.mark.parametrize(("scheme", "signed"), [("kgw", False), ("aaronson", False), ("kgw", True)])
def test_clean_transformers_wrong_keys_v32000_k2(scheme: str, signed: bool) -> None:
    from radio.models import build_model

    b = build_model("tiny-0.5m", vocab_size=32000, seed=0).eval()
    r = copy.deepcopy(b)
    with torch.no_grad():
        b.get_output_embeddings().weight.mul_(8.0)  # sharper, uneven distributions (still key-free)
        # R: B's head plus key-free noise, untied from its input embeddings (a reference close to B, not B)
        head = b.get_output_embeddings().weight
        noise = torch.randn(head.shape, generator=torch.Generator().manual_seed(1))
        r.get_output_embeddings().weight = torch.nn.Parameter(head + 0.3 * head.std() * noise)
    wm = _wm(scheme, k=2, vocab=32000)
    texts = watermarked_text(_wm("kgw", k=2, vocab=32000), n_texts=4, length=100, seed=1)
    reading = read_texts(b, texts, k=2, seq_len=128, top_m=32)
    ref = _reference(r, texts, reading)
    assert window_mass(wm, reading, reference=ref).weight.size > 1000
    _assert_calibrated(_wrong_keys(wm, reading, ref, signed))


def test_three_bricks_fixed_size_lists_wrong_keys() -> None:
    wm = _wm("kgw", vocab=128, key=7, hashing="three_bricks")
    texts = watermarked_text(_wm("kgw", vocab=128), n_texts=2, length=50, seed=2)
    reading = read_texts(BigramModel(128, seed=3), texts, k=1, seq_len=128, top_m=32)
    mass = window_mass(wm, reading, reference=_reference(BigramModel(128, seed=4), texts, reading))
    _assert_calibrated([open_model_dist_test(wm.with_key(1000 + i), reading, mass=mass) for i in range(N_KEYS)])
    with pytest.raises(ValueError, match="one sign only"):  # fixed-size lists bound weights of one sign only
        window_mass(wm, reading, reference=_reference(BigramModel(128, seed=4), texts, reading), signed=True)


def _correct_key_runs(
    scheme: str,
    model: torch.nn.Module,
    reference: torch.nn.Module,
    text: Callable[[Watermark, int], list[list[int]]],
    exclusion: bool = True,
    n_keys: int = N_KEYS,
    signed: bool = False,
) -> list:
    """H0 with the CORRECT key: fresh text watermarked with each key, read by B and R that never saw a key."""
    keys = [_wm(scheme, vocab=128, key=f"key-{i}".encode()) for i in range(n_keys)]
    texts = [text(wm, i) for i, wm in enumerate(keys)]
    assert all(len(t) == _SEQ for ts in texts for t in ts)
    flat = [t for ts in texts for t in ts]
    reading = read_texts(model, flat, k=1, seq_len=_SEQ, top_m=32)
    ref = _reference(reference, flat, reading)
    out, start = [], 0
    for wm, ts in zip(keys, texts, strict=True):
        stop = start + _SEQ * len(ts)
        part = _slice(reading, start, stop)
        mass = window_mass(
            wm, part, in_sequence_exclusion=exclusion, weighting="sum", reference=ref[start:stop], signed=signed
        )
        out.append(open_model_dist_test(wm, part, mass=mass, in_sequence_exclusion=exclusion, curve_points=0))
        start = stop
    return out


@pytest.mark.parametrize("signed", [False, True])
def test_a_model_that_copies_its_context_is_not_radioactive_against_a_bigram_reference(signed: bool) -> None:
    def text(wm: Watermark, i: int) -> list[list[int]]:
        return watermarked_text(wm, n_texts=4, length=96, seed=i)

    runs = _correct_key_runs("kgw", ContextModel(128), BigramModel(128, seed=5), text, signed=signed)
    _assert_calibrated(runs)
    if signed:
        return
    # negative control: without the in-sequence exclusion the copier's excess sits on the green tokens it has seen
    p, z = _summary(_correct_key_runs("kgw", ContextModel(128), BigramModel(128, seed=5), text, False, n_keys=60))
    assert z.mean() > 3 and (p <= 0.01).mean() > 0.5


@pytest.mark.parametrize("signed", [False, True])
def test_looping_text_read_by_a_copying_model_aaronson_and_a_clean_model_kgw(signed: bool) -> None:
    def loops(period: int, repeats: int) -> Callable[[Watermark, int], list[list[int]]]:
        def text(wm: Watermark, i: int) -> list[list[int]]:
            return [t[:_SEQ] for t in looped(watermarked_text(wm, n_texts=4, length=60, seed=i), period, repeats)]

        return text

    copier, clean = ContextModel(128), BigramModel(128, seed=4)
    _assert_calibrated(_correct_key_runs("aaronson", copier, BigramModel(128, seed=6), loops(12, 4), signed=signed))
    _assert_calibrated(_correct_key_runs("kgw", clean, ContextModel(128), loops(8, 6), signed=signed))


@pytest.mark.parametrize("signed", [False, True])
def test_a_model_that_learned_another_key_stays_uniform_under_the_tested_key(signed: bool) -> None:
    other = _wm(vocab=512, key=b"someone-else")
    b = LearnedKeyModel(other, seed=5)
    texts = watermarked_text(_wm(vocab=512), n_texts=8, length=120, seed=3)
    reading = read_texts(b, texts, k=1, seq_len=128, top_m=32)
    ref = _reference(b.base, texts, reading)  # its own base: the excess is exactly the other key's tilt
    own = window_mass(other, reading, reference=ref, signed=signed)
    assert open_model_dist_test(other, reading, mass=own).log10_pvalue < -20
    _assert_calibrated(_wrong_keys(_wm(vocab=512), reading, ref, signed))


def test_a_weak_inherited_tilt_is_found_by_the_excess_and_missed_by_the_raw_mass() -> None:
    wm = _wm(vocab=512)
    b = LearnedKeyModel(wm, seed=7, delta=0.15)  # a small tilt on the tested key's lists
    texts = watermarked_text(_wm(vocab=512, key=b"other-text"), n_texts=8, length=120, seed=4)
    reading = read_texts(b, texts, k=1, seq_len=128, top_m=32)
    raw = open_model_dist_test(wm, reading, mass=window_mass(wm, reading, weighting="sum"))
    ref = NoisyCopy(b.base, 512, seed=8, scale=0.3)  # a reference that is not B's exact base
    mass = window_mass(wm, reading, weighting="sum", reference=_reference(ref, texts, reading))
    calibrated = open_model_dist_test(wm, reading, mass=mass)
    assert calibrated.log10_pvalue < -5 and raw.log10_pvalue > -3, (calibrated.log10_pvalue, raw.log10_pvalue)
    assert math.isfinite(calibrated.detection.h0["sd"])
    # signed weights also count the red tokens B moved away from: more power on the same tilt
    signed = window_mass(wm, reading, weighting="sum", reference=_reference(ref, texts, reading), signed=True)
    assert (signed.weight < 0).any() and signed.signed
    both = open_model_dist_test(wm, reading, mass=signed)
    assert both.log10_pvalue < calibrated.log10_pvalue and "signed" in str(both.detection.h0["weights"])


def test_actor_reads_the_reference_once_and_checks_its_folder(tmp_path: Path) -> None:
    import datasets

    from radio.detect.actor import DetectionActor

    b_dir, r_dir = save_checkpoint(tmp_path / "b", 300, seed=0), save_checkpoint(tmp_path / "r", 300, seed=1)
    wm = _wm(vocab=300)
    texts = watermarked_text(wm, n_texts=6, length=50, seed=5)
    mix = tmp_path / "mix"
    datasets.Dataset.from_dict({"prompt_ids": [[1, 2]] * len(texts), "answer_ids": texts}).save_to_disk(
        str(mix / "heldout")
    )
    actor = DetectionActor(b_dir, wm.config.to_dict(), key=b"alice", data=mix, seq_len=64)
    spec = {"setting": "open-ref", "reference": str(r_dir), "top_m": 16}
    rows = actor.run_all([spec, {**spec, "key": "wrong"}, {**spec, "key": "wrong", "wrong_key_index": 1}])
    assert [r["setting"] for r in rows] == ["open-ref"] * 3 and rows[1]["control"] == "wrong-key"
    assert rows[0]["reference"] == str(r_dir) and all(r["log10_pvalue"] > -3 for r in rows)
    assert sum(1 for key in actor._cache if key[0] == "reference-model") == 1
    with pytest.raises(FileNotFoundError, match=r"reference .*missing"):
        actor.run({**spec, "reference": str(tmp_path / "missing")})
    other = save_checkpoint(tmp_path / "other", 280, seed=2)
    with pytest.raises(ValueError, match="tokenizer differs"):
        actor.run({**spec, "reference": str(other)})


def test_reference_is_required_and_excess_checked() -> None:
    from radio.config import ConfigError
    from radio.detect.spec import DetectionSpec

    with pytest.raises(ConfigError, match="reference"):
        DetectionSpec.from_dict({"setting": "open-ref"})
    with pytest.raises(ConfigError, match="excess"):
        DetectionSpec.from_dict({"setting": "open-ref", "reference": "/r", "excess": "both"})
    assert DetectionSpec.from_dict({"setting": "open-ref", "reference": "/r", "excess": "signed"}).options.excess == (
        "signed"
    )
    with pytest.raises(ValueError, match="give `reference`"):
        window_mass(
            _wm(vocab=64), read_texts(BigramModel(64, seed=0), [[1, 2, 3]], k=1, seq_len=8, top_m=4), signed=True
        )
