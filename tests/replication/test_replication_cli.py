"""`radio replication` end to end (synth -> cluster -> score) and its errors: exit 2 with one `error:` line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from radio.cli import main
from radio.replication.corpus import load_corpus


def _run(capsys, *argv):
    code = main(["replication", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_synth_cluster_score(tmp_path, capsys, small_corpus_dir):
    code, out, _ = _run(
        capsys, "synth", str(tmp_path / "syn"), "--n-generic", "50", "--n-subject", "20", "--n-planted", "30"
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["groups"]["planted"] == 30 and summary["groups"]["generic"] == 50

    clusters_dir = tmp_path / "clusters"
    code, out, _ = _run(
        capsys, "cluster", str(small_corpus_dir), "--keyword", "Varnhagen", "--out", str(clusters_dir),
        "--exclude-keyword-words", "--pull-words", "almond blossom", "sunflowers",
    )  # fmt: skip
    assert code == 0
    payload = json.loads(out)
    top = payload["clusters"][0]
    assert top["rank"] == 1 and set(top["thresholds"]) == {"least-similar-member", "p5-member", "highest-non-member"}
    assert [w["word"] for w in top["top_words"][:2]] == ["almond", "blossom"]
    pulls = {row["word"]: row["share"] for row in payload["word_pull_top_cluster"]}
    assert pulls["almond blossom"] == 1.0 and pulls["sunflowers"] == 0.0
    saved = json.loads((clusters_dir / "clusters.json").read_text())
    corpus = load_corpus(small_corpus_dir)
    groups = corpus.frame["group"].to_numpy()
    assert set(groups[saved["clusters"][0]["members"]]) == {"planted"}

    # Generations: 10 training copies of the artwork and 30 generic images, as an .npz and as a folder.
    planted = corpus.load_images(np.flatnonzero(groups == "planted")[:10])
    generic = corpus.load_images(np.flatnonzero(groups == "generic")[:30])
    np.savez(tmp_path / "gen.npz", images=np.concatenate([planted, generic]))
    code, out, _ = _run(capsys, "score", str(clusters_dir), str(tmp_path / "gen.npz"))
    assert code == 0
    rules = {row["rule"]: row for row in json.loads(out)["rules"]}
    least = rules["least-similar-member"]
    assert (least["n"], least["replicated"]) == (40, 10)
    assert least["ci_low"] < 0.25 < least["ci_high"]
    folder = tmp_path / "gen"
    folder.mkdir()
    for i, image in enumerate(planted[:4]):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    code, out, _ = _run(capsys, "score", str(clusters_dir), str(folder))
    assert code == 0 and json.loads(out)["rules"][0]["rate"] == 1.0


def test_errors_exit_2(tmp_path, capsys, small_corpus_dir):
    cases = []
    cases.append(
        (["cluster", str(tmp_path / "absent.parquet"), "--keyword", "x"], "absent.parquet: metadata table not found")
    )
    pd.DataFrame({"text": ["a"], "image_path": ["a.png"]}).to_parquet(tmp_path / "nocap.parquet")
    cases.append((["cluster", str(tmp_path / "nocap.parquet"), "--keyword", "x"], "column 'caption' absent"))
    pd.DataFrame({"caption": ["a x"], "image_path": ["gone.png"]}).to_parquet(tmp_path / "gone.parquet")
    cases.append((["cluster", str(tmp_path / "gone.parquet"), "--keyword", "x"], "missing: "))
    cases.append((["cluster", str(small_corpus_dir), "--keyword", "zebra crossing"], "matches no caption"))
    cases.append((["score", str(tmp_path), str(tmp_path)], "clusters.json: not found"))
    for argv, message in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("radio replication: error: ") and message in err, err
        assert "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["replication", "cluster", str(small_corpus_dir), "--keyword", "x", "--method", "nope"])
    assert exit_info.value.code == 2
