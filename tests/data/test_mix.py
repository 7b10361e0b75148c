"""rho/d mixes: exact counts, disjointness, supervision semantics, nesting across rho, clear errors."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from conftest import Generated, synthetic_set

from radio.config import ConfigError
from radio.data import EmptyDatasetError, MixConfig, make_mix, make_mixes


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sets")
    return synthetic_set(folder / "wm", 700, True, 0), synthetic_set(folder / "plain", 500, False, 700)


def load_mix(path: Path) -> dict[str, datasets.Dataset]:
    return {name: datasets.load_from_disk(str(path / name)) for name in ("train", "known", "heldout")}


@pytest.mark.parametrize("rho,expected_wm", [(0.0, 0), (0.05, 20), (0.5, 200), (1.0, 400)])
def test_exact_counts(sets: tuple[Path, Path], tmp_path: Path, rho: float, expected_wm: int) -> None:
    cfg = MixConfig(rho=rho, d=0.5, train_size=400, known_size=40, heldout_size=100)
    out = make_mix(cfg, *sets, root=tmp_path)
    mix = load_mix(out.path)
    counts = out.manifest["counts"]
    assert len(mix["train"]) == 400 and sum(mix["train"]["watermarked"]) == expected_wm
    assert counts["train_watermarked"] == expected_wm and counts["train_plain"] == 400 - expected_wm
    assert len(mix["known"]) == 40 and all(mix["known"]["watermarked"])
    members = min(20, expected_wm)
    assert sum(mix["known"]["member"]) == members == counts["known_members"]
    assert counts["d_effective"] == members / 40
    assert len(mix["heldout"]) == 100 and all(mix["heldout"]["watermarked"])
    assert "member" in mix["known"].column_names and "member" not in mix["train"].column_names


def test_disjointness_and_d_semantics(sets: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = MixConfig(rho=0.3, d=0.25, train_size=400, known_size=80, heldout_size=100)
    mix = load_mix(make_mix(cfg, *sets, root=tmp_path).path)
    train_ids = set(mix["train"]["id"])
    held_ids = set(mix["heldout"]["id"])
    members = {i for i, m in zip(mix["known"]["id"], mix["known"]["member"], strict=True) if m}
    outsiders = {i for i, m in zip(mix["known"]["id"], mix["known"]["member"], strict=True) if not m}
    assert len(members) == 20 and len(outsiders) == 60  # d = 0.25 of 80
    assert members <= train_ids  # really in B's training set
    assert not outsiders & train_ids and not held_ids & train_ids and not held_ids & outsiders
    assert not set(mix["heldout"]["prompt"]) & set(mix["train"]["prompt"])
    assert len(train_ids) == 400  # no record twice


def test_nested_across_rho_and_fixed_heldout(sets: tuple[Path, Path], tmp_path: Path) -> None:
    base = MixConfig(d=1.0, train_size=200, known_size=10, heldout_size=50)
    mixes = make_mixes(base, [0.1, 0.5], *sets, root=tmp_path)
    small, large = (load_mix(mixes[r].path) for r in (0.1, 0.5))
    assert small["heldout"]["id"] == large["heldout"]["id"]
    wm_small = {i for i, w in zip(small["train"]["id"], small["train"]["watermarked"], strict=True) if w}
    wm_large = {i for i, w in zip(large["train"]["id"], large["train"]["watermarked"], strict=True) if w}
    assert len(wm_small) == 20 and wm_small < wm_large


def test_rho_outside_unit_interval_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"mix.rho"):
        MixConfig(rho=1.5)
    with pytest.raises(ConfigError, match=r"mix.d"):
        MixConfig(d=-0.1)


def test_too_small_sets_and_wrong_inputs(sets: tuple[Path, Path], tmp_path: Path) -> None:
    wm, plain = sets
    with pytest.raises(EmptyDatasetError, match=r"mix.train_size.*watermarked set has 700"):
        make_mix(MixConfig(rho=1.0, train_size=650, heldout_size=100), wm, plain, tmp_path)
    with pytest.raises(ValueError, match=r"expected only watermarked"):
        make_mix(MixConfig(rho=0.5, train_size=10), plain, wm, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nowhere"):
        make_mix(MixConfig(), tmp_path / "nowhere", plain, tmp_path)
    assert not [p for p in (tmp_path / "mix").iterdir() if (p / "manifest.json").exists()]


def test_mix_of_generated_sets(generated: Generated) -> None:
    cfg = MixConfig(rho=0.5, d=1.0, train_size=20, known_size=6, heldout_size=10)
    out = make_mix(cfg, generated.watermarked.path, generated.plain.path, generated.root)
    mix = load_mix(out.path)
    assert sum(mix["train"]["watermarked"]) == 10 and len(mix["train"]) == 20
    assert set(mix["train"].column_names) >= {"prompt_ids", "answer_ids", "watermarked"}


def test_phi_and_clean_splits_are_disjoint_and_fixed_across_rho(sets: tuple[Path, Path], tmp_path: Path) -> None:
    """`phi`: other watermarked text of A (for the unsupervised filter); `clean`: plain records outside train."""
    base = MixConfig(d=1.0, train_size=300, known_size=40, heldout_size=100, phi_size=80, clean_size=120)
    out = make_mixes(base, [0.0, 0.5], *sets, root=tmp_path)
    loaded = {
        rho: {n: datasets.load_from_disk(str(out[rho].path / n)) for n in ("train", "known", "heldout", "phi", "clean")}
        for rho in (0.0, 0.5)
    }
    for mix in loaded.values():
        train, known, held, phi, clean = (set(mix[n]["id"]) for n in ("train", "known", "heldout", "phi", "clean"))
        assert len(phi) == 80 and all(mix["phi"]["watermarked"]) and len(clean) == 120
        assert not any(mix["clean"]["watermarked"])
        assert not phi & (train | known | held) and not clean & train
    assert loaded[0.0]["phi"]["id"] == loaded[0.5]["phi"]["id"]
    assert loaded[0.0]["clean"]["id"] == loaded[0.5]["clean"]["id"]
    assert out[0.5].manifest["counts"]["phi_size"] == 80
    with pytest.raises(EmptyDatasetError, match="clean"):
        make_mix(
            MixConfig(rho=0.0, train_size=450, clean_size=100, heldout_size=10, known_size=0), *sets, root=tmp_path
        )
