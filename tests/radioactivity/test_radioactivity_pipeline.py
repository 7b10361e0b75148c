"""Radioactivity on tiny models fine-tuned by the pipeline: detection at rho = 1, calibrated controls, phi, MIA.

The session fixture `pipeline` (conftest) runs the library's stages: bases A and B, A's watermarked (KGW, k = 1,
delta 4) and plain answers, mixes at rho = 1 and rho = 0, B fine-tuned on each; plus a k = 2 run for phi.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from radio_pipeline import KEY, Pipeline
from radio_synthetic import looks_uniform, uniformity

from radio.detect.actor import DetectionActor, standard_specs
from radio.detect.mia import SampleScores, mia_test
from radio.detect.open_model import open_model_test
from radio.detect.phi import Phi
from radio.detect.result import derive_key
from radio.detect.settings.mia import mia_scores
from radio.detect.settings.open_model import reading as reading_pass
from radio.detect.spec import DetectionSpec

pytestmark = pytest.mark.slow  # the shared fixture takes 1-2 minutes on 2 cores
N_KEYS = 200
SEQ_LEN = 128


@pytest.fixture(scope="module")
def actors(pipeline: Pipeline) -> dict[str, DetectionActor]:
    """One actor per checkpoint (loaded once), as the sweep uses them."""
    wm = pipeline.watermark
    rho1 = DetectionActor(pipeline.model_rho1, wm, key=KEY, data=pipeline.mix_rho1, seq_len=SEQ_LEN)
    return {
        "rho1": rho1,
        "rho1_d0": DetectionActor(
            pipeline.model_rho1, wm, key=KEY, data=pipeline.mix_rho1_d0, model=rho1.model, tokenizer=rho1.tokenizer
        ),
        "rho0": DetectionActor(pipeline.model_rho0, wm, key=KEY, data=pipeline.mix_rho0, seq_len=SEQ_LEN),
        "base": DetectionActor(
            pipeline.base_b, wm, key=KEY, data=pipeline.mix_rho1, role="base-model", seq_len=SEQ_LEN
        ),
        "phi": DetectionActor(pipeline.model_phi, pipeline.watermark_phi, key=KEY, data=pipeline.mix_phi),
        "aaronson": DetectionActor(
            pipeline.model_aaronson, pipeline.watermark_aaronson, key=KEY, data=pipeline.mix_aaronson, seq_len=SEQ_LEN
        ),
        "aaronson_base": DetectionActor(
            pipeline.base_b, pipeline.watermark_aaronson, key=KEY, data=pipeline.mix_aaronson, role="base-model"
        ),
    }


def _many_keys(actor: DetectionActor, data: Path, **kwargs: object) -> list[float]:
    """Mid-p values of the open unsupervised test under N_KEYS keys derived from the true one (one reading pass)."""
    reading = reading_pass(actor, data, "heldout", None)
    return [
        open_model_test(actor.watermark.with_key(derive_key(KEY, i)), reading, mid_p=True, **kwargs).pvalue
        for i in range(N_KEYS)
    ]


def test_rho1_is_detected_in_the_open_unsupervised_setting(actors: dict[str, DetectionActor]) -> None:
    row = actors["rho1"].run({"setting": "open", "supervised": False})
    assert row["log10_pvalue"] < -6, row
    assert row["n_seen"] > row["n_eligible"] > row["n_scored"] > 200
    assert row["score_mean"] > 0.3 and row["setting"] == "open" and row["supervision"] == "unsupervised"
    assert row["curve"][-1] == [row["n_scored"], pytest.approx(row["log10_pvalue"])]
    assert row["key_fingerprint"] == actors["rho1"].watermark.fingerprint and KEY.decode() not in json.dumps(row)
    supervised = actors["rho1"].run({"setting": "open", "supervised": True})
    assert supervised["log10_pvalue"] < -6 and supervised["split"] == "known"


@pytest.mark.parametrize("name", ["rho0", "base"])
def test_controls_are_not_detected(actors: dict[str, DetectionActor], name: str) -> None:
    for spec in (
        {"setting": "open"},
        {"setting": "open", "supervised": True},
        {"setting": "closed", "supervised": True, "max_new_tokens": 32},
    ):
        row = actors[name].run(spec)
        assert row["log10_pvalue"] > -3, (name, spec, row["log10_pvalue"])
        assert row["control"] == ("base-model" if name == "base" else "none")
    wrong = actors["rho1"].run({"setting": "open", "key": "wrong"})
    assert wrong["log10_pvalue"] > -3 and wrong["control"] == "wrong-key"


@pytest.mark.parametrize("name", ["rho1", "rho0", "base"])
def test_pvalues_over_many_keys_are_uniform(actors: dict[str, DetectionActor], pipeline: Pipeline, name: str) -> None:
    """Wrong keys on the radioactive model, and any key on the rho = 0 and base models: uniform p-values."""
    pvalues = _many_keys(actors[name], actors[name].default_data)  # type: ignore[arg-type]
    assert looks_uniform(pvalues), (name, uniformity(pvalues))


def test_uniformity_fails_without_the_tape(actors: dict[str, DetectionActor]) -> None:
    """The same check, with every (window, token) pair scored each time it occurs: it must fail."""
    pvalues = _many_keys(actors["rho1"], actors["rho1"].default_data, dedup="none")  # type: ignore[arg-type]
    assert not looks_uniform(pvalues), uniformity(pvalues)


@pytest.mark.parametrize("greedy", [False, True])
def test_supervised_closed_test_gains_power_with_phi(actors: dict[str, DetectionActor], greedy: bool) -> None:
    actor = actors["phi"]
    spec = {"setting": "closed", "supervised": True, "greedy": greedy, "max_new_tokens": 32}
    plain = actor.run(spec)
    filtered = actor.run({**spec, "phi": "all"})
    assert filtered["n_seen"] == plain["n_seen"]  # the same answers, scored twice
    assert filtered["n_scored"] < plain["n_scored"]
    assert filtered["phi"]["size"] > 0 and filtered["phi_size"] == filtered["phi"]["size"]
    assert plain["log10_pvalue"] < -3
    assert filtered["log10_pvalue"] < plain["log10_pvalue"], (filtered["log10_pvalue"], plain["log10_pvalue"])


def test_mia_detects_at_d1_and_is_at_chance_at_d0(actors: dict[str, DetectionActor]) -> None:
    d1 = actors["rho1"].run({"setting": "mia"})
    assert d1["d"] == 1.0 and d1["log10_pvalue"] < -3 and d1["scores"]["min_k"]["log10_pvalue"] < -3
    assert d1["mean_suspected"] < d1["mean_reference"]  # members: lower zlib-calibrated loss
    d0 = actors["rho1_d0"].run({"setting": "mia"})
    assert d0["d"] == 0.0 and d0["pvalue"] > 0.01
    base = actors["base"].run({"setting": "mia"})
    assert base["pvalue"] > 0.01
    # repeated draws of 50 suspected vs 50 fresh samples
    data = actors["rho1_d0"].default_data
    rng = np.random.default_rng(0)
    known_d0 = mia_scores(actors["rho1_d0"], data, "known", None)  # type: ignore[arg-type]
    heldout = mia_scores(actors["rho1_d0"], data, "heldout", None)  # type: ignore[arg-type]
    members = mia_scores(actors["rho1"], actors["rho1"].default_data, "known", None)  # type: ignore[arg-type]
    pool = np.arange(len(known_d0) + len(heldout))
    everyone = SampleScores(
        *(np.concatenate([getattr(known_d0, f), getattr(heldout, f)]) for f in SampleScores.__dataclass_fields__)
    )
    at_chance, detected = [], []
    for _ in range(N_KEYS):
        split = rng.permutation(pool)
        at_chance.append(mia_test(everyone.subset(split[:50]), everyone.subset(split[50:100])).pvalue)
        draw = rng.choice(len(members), 50, replace=False), rng.choice(len(heldout), 50, replace=False)
        detected.append(mia_test(members.subset(draw[0]), heldout.subset(draw[1])).pvalue)
    assert looks_uniform(at_chance, discrete=True), uniformity(at_chance, discrete=True)
    assert np.median(detected) < 1e-3


def test_actor_runs_a_suite_and_saves_results(actors: dict[str, DetectionActor], tmp_path: Path) -> None:
    actor = actors["rho1"]
    specs = [s for s in standard_specs(actor.default_data, phi_top_n=50, wrong_keys=1) if s.setting != "closed"]
    rows = actor.run_all(specs)
    assert len(rows) == len(specs)
    json.dumps(rows)  # JSON-able
    assert {r["control"] for r in rows} == {"none", "wrong-key"}
    saved = actor.run(DetectionSpec(setting="open", phi=50, out_dir=str(tmp_path / "out")))
    assert json.loads((tmp_path / "out" / "result.json").read_text())["log10_pvalue"] == saved["log10_pvalue"]
    phi = Phi.load(tmp_path / "out" / "phi")
    assert phi.size == 50 == saved["phi"]["size"] and phi.k == 1


def test_aaronson_pipeline_detects_rho1_and_not_the_base_model(actors: dict[str, DetectionActor]) -> None:
    """The whole pipeline with the Aaronson-Kirchner scheme (k = 2, supervised): exact Gamma tail, tape, controls."""
    row = actors["aaronson"].run({"setting": "open", "supervised": True})
    assert row["scheme"] == "aaronson" and row["n_scored"] > 200, row
    assert row["log10_pvalue"] < -3, row["log10_pvalue"]
    assert row["score_mean"] > 1.0  # Exp(1) under H0: mean 1
    for name, spec in (("aaronson", {"key": "wrong"}), ("aaronson_base", {})):
        control = actors[name].run({"setting": "open", "supervised": True, **spec})
        assert control["log10_pvalue"] > -3, (name, control["log10_pvalue"])
    reading = reading_pass(actors["aaronson"], actors["aaronson"].default_data, "known", None)  # type: ignore[arg-type]
    pvalues = [
        open_model_test(actors["aaronson"].watermark.with_key(derive_key(KEY, i)), reading, mid_p=True).pvalue
        for i in range(N_KEYS)
    ]
    assert looks_uniform(pvalues), uniformity(pvalues)


def test_closed_unsupervised_detects_rho1_and_not_the_controls(actors: dict[str, DetectionActor]) -> None:
    """Closed model, unsupervised: B answers prompts of A's held-out text (B never trained on them)."""
    spec = {"setting": "closed", "supervised": False, "max_new_tokens": 32}
    row = actors["rho1"].run(spec)
    assert row["split"] == "heldout" and row["supervision"] == "unsupervised", row
    assert row["n_seen"] > row["n_eligible"] >= row["n_scored"] > 100, row
    assert row["log10_pvalue"] < -3, row["log10_pvalue"]
    for name in ("rho0", "base"):
        assert actors[name].run(spec)["log10_pvalue"] > -3, name
    assert actors["rho1"].run({**spec, "key": "wrong"})["log10_pvalue"] > -3


@pytest.mark.parametrize("name", ["rho1", "rho0", "base"])
def test_phi_pvalues_over_many_keys_are_uniform(actors: dict[str, DetectionActor], name: str) -> None:
    """The unsupervised phi (the most frequent windows of other watermarked text of A, here the known split) under
    H0: wrong keys on the radioactive model, any key on the controls; KS and the FPR at 0.05 and 0.01."""
    actor = actors[name]
    data = actor.default_data
    assert data is not None
    phi = actor.phi(data, DetectionSpec(setting="open", phi=50, phi_split="known", data=data))
    assert phi is not None and phi.size == 50
    reading = reading_pass(actor, data, "heldout", None)
    pvalues = [
        open_model_test(actor.watermark.with_key(derive_key(KEY, i)), reading, phi=phi, mid_p=True).pvalue
        for i in range(N_KEYS)
    ]
    assert looks_uniform(pvalues), (name, uniformity(pvalues))
    assert np.mean(np.asarray(pvalues) <= 0.01) <= 0.04, (name, uniformity(pvalues, alpha=0.01))
