"""`radio detect` end to end on a toy checkpoint and a synthetic mix folder (fast): JSON out, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from radio_synthetic import watermarked_markov

from radio.cli import main
from radio.data.generate import FEATURES
from radio.train.toy import build_toy_base
from radio.watermark import Watermark, WatermarkConfig

KEY = "cli-test-key-0a9f"
VOCAB = 256


def _split(folder: Path, prompts: list[list[int]], answers: list[list[int]], member: list[bool] | None) -> None:
    wm = Watermark(WatermarkConfig("kgw", k=1), key=KEY.encode(), vocab_size=VOCAB)
    records = {
        "prompt": [f"prompt {i} {folder.name}" for i in range(len(prompts))],
        "answer": [" ".join(map(str, a)) for a in answers],
        "prompt_ids": prompts,
        "answer_ids": answers,
        "watermarked": [True] * len(prompts),
        "scheme": ["kgw"] * len(prompts),
        "k": [1] * len(prompts),
        "key_fingerprint": [wm.fingerprint] * len(prompts),
    }
    features = {name: FEATURES[name] for name in records}
    if member is not None:
        records["member"] = member
        features["member"] = datasets.Value("bool")
    datasets.Dataset.from_dict(records, features=datasets.Features(features)).save_to_disk(str(folder))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    model = build_toy_base(root / "model", vocab_size=VOCAB, seed=0)
    wm = Watermark(WatermarkConfig("kgw", k=1, delta=4.0), key=KEY.encode(), vocab_size=VOCAB)
    texts = watermarked_markov(wm, n_texts=60, length=40, seed=0)
    prompts, answers = [t[:8] for t in texts], [t[8:] for t in texts]
    mix = root / "mix"
    _split(mix / "known", prompts[:30], answers[:30], [True] * 20 + [False] * 10)
    _split(mix / "heldout", prompts[30:], answers[30:], None)
    empty = root / "empty"
    _split(empty / "known", [], [], [])
    _split(empty / "heldout", [], [], None)
    key_file = root / "key.txt"
    key_file.write_text(KEY + "\n")
    answers_file = root / "answers.jsonl"
    answers_file.write_text(
        "".join(json.dumps({"prompt_ids": p, "answer_ids": a}) + "\n" for p, a in zip(prompts, answers, strict=True))
    )
    return {"model": model, "mix": mix, "empty": empty, "key": key_file, "answers": answers_file, "root": root}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict | None, str]:
    code = main(["detect", *argv])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def test_open_closed_mia_and_wrong_key(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--model", str(setup["model"]), "--data", str(setup["mix"]), "--key-file", str(setup["key"])]
    code, row, _ = _run(capsys, *common, "--setting", "open", "--unsupervised", "--seq-len", "64")
    assert code == 0 and row["setting"] == "open" and row["supervision"] == "unsupervised" and row["k"] == 1
    assert row["n_seen"] == 30 * 33  # answers + one eos separator each
    assert row["n_seen"] >= row["n_eligible"] >= row["n_scored"] > 0 and row["log10_pvalue"] <= 0
    assert KEY not in json.dumps(row)
    out = setup["root"] / "out"
    code, row, _ = _run(
        capsys,
        *common,
        "--setting",
        "closed",
        "--supervised",
        "--phi",
        "all",
        "--max-new-tokens",
        "8",
        "--out",
        str(out),
    )
    assert code == 0 and row["setting"] == "closed" and row["phi"]["size"] > 0 and row["prompt_exclusion"] == "own"
    assert (out / "result.json").is_file() and (out / "phi" / "phi.npy").is_file()
    code, row, _ = _run(capsys, *common, "--setting", "mia")
    assert code == 0 and row["setting"] == "mia" and row["d"] == pytest.approx(20 / 30)
    assert row["n_suspected"] == 30 and row["n_reference"] == 30 and set(row["scores"]) == {"zlib", "min_k"}
    code, row, _ = _run(capsys, *common, "--setting", "open", "--supervised", "--wrong-key", "3")
    assert code == 0 and row["control"] == "wrong-key" and row["split"] == "known"


def test_answers_from_jsonl(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, row, _ = _run(
        capsys,
        "--model", str(setup["model"]), "--key-file", str(setup["key"]), "--setting", "closed", "--supervised",
        "--answers", str(setup["answers"]), "--prompt-field", "prompt_ids", "--k", "1",
    )  # fmt: skip
    # the answers are A's watermarked text itself: strongly detected, prompts excluded
    assert code == 0 and row["log10_pvalue"] < -20 and row["n_seen"] == 60 * 32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--data": "missing"}, "folder not found"),
        ({"--model": "missing"}, "folder not found"),
        ({"--vocab-size": "300"}, "vocab mismatch"),
        ({"--data": "empty"}, "empty"),
        ({"--key-file": "missing"}, "not found"),
        ({"--k": "2"}, "k=[1]"),
    ],
)
def test_bad_input_gives_a_clear_error(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], change: dict[str, str], message: str
) -> None:
    args = {"--model": str(setup["model"]), "--data": str(setup["mix"]), "--key-file": str(setup["key"])}
    for flag, value in change.items():
        args[flag] = str(setup["root"] / value) if value in ("missing", "empty") else value
    argv = [item for pair in args.items() for item in pair]
    code, _, err = _run(capsys, *argv, "--setting", "open", "--unsupervised")
    assert code == 2 and message in err and "Traceback" not in err


def test_the_key_is_never_a_command_line_argument(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["detect", "--model", str(setup["model"]), "--setting", "open", "--key", KEY])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_detection_spec_validation_names_the_field() -> None:
    from radio.config import ConfigError
    from radio.detect import DetectionSpec

    assert DetectionSpec.from_dict({"setting": "closed", "phi": 50, "data": "/x"}).phi == 50
    cases = [
        ({"setting": "bad"}, "setting"),
        ({"phi": 0}, "phi"),
        ({"dedup": "x"}, "dedup"),
        ({"key": "other"}, "key"),
        ({"answers": "a.jsonl"}, "answers"),
        ({"typo": 1}, "typo"),
    ]
    for bad, field in cases:
        with pytest.raises(ConfigError, match=field):
            DetectionSpec.from_dict(bad)
