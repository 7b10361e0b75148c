"""The detection actor: load a checkpoint once, run a list of radioactivity tests on it, return JSON-able rows.

`DetectionActor` is a plain class (no Ray here): the sweep wraps it with `ray.remote`, or uses it from an
`Evaluation` (`load=lambda ckpt, p: DetectionActor(ckpt, spec, key_file=...)`, `run=lambda a, t: a.run(t)`).
The base-model control is the same actor on the base checkpoint with `role="base-model"`.

A test is a `DetectionSpec` (or a dict of its fields): setting (open / closed / mia), supervised or not, the mix
folder holding Alice's text (`<mix>/known` for supervised tests, `<mix>/heldout` for unsupervised ones, see
`radio.data.mix`), phi, dedup, key (correct, or the i-th wrong key derived from it). Work that does not depend on
the key (B's reading pass, B's answers, phi, MIA sample scores) is cached in the actor, so the wrong-key control
and calibration over many keys cost scoring only.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from radio.config import from_dict, require
from radio.detect.closed_model import Answers, closed_model_test, generate_answers
from radio.detect.mia import MIA_SCORES, SampleScores, mia_test, sample_scores
from radio.detect.open_model import ReadingPass, open_model_test, read_texts
from radio.detect.phi import Phi, build_phi
from radio.detect.result import derive_key
from radio.detect.tape import DEDUP_MODES
from radio.detect.text import PROMPT_EXCLUSION_MODES
from radio.watermark import Watermark, WatermarkSpec

log = logging.getLogger(__name__)

SETTINGS = ("open", "closed", "mia")
KEY_CHOICES = ("correct", "wrong")
ROLES = ("model", "base-model")


@dataclass(frozen=True)
class DetectionSpec:
    """One test to run on the actor's model.

    `data`: a mix folder (None: the actor's default). `split`: where the test text comes from (default `known`
    when supervised, else `heldout`); `phi_split` likewise for phi (default: the test text's split). `phi`: None
    (no filter), "all" (every k-gram of the phi split) or N (its N most frequent k-grams). `answers`: a JSONL file
    of answers produced elsewhere (closed setting), fields `answer_field` / `prompt_field`. `max_texts` caps the
    records read. `out_dir`: where to save the result JSON and phi.
    """

    setting: str = "open"
    supervised: bool = False
    data: str | Path | None = None
    split: str | None = None
    phi: int | str | None = None
    phi_split: str | None = None
    dedup: str = "window+token"
    key: str = "correct"
    wrong_key_index: int = 0
    in_sequence_exclusion: bool = True
    prompt_exclusion: str = "own"
    max_texts: int | None = None
    answers: str | Path | None = None
    answer_field: str = "answer_ids"
    prompt_field: str | None = "prompt_ids"
    greedy: bool = False
    max_new_tokens: int = 64
    seed: int = 0
    mid_p: bool = False
    mia_score: str = "zlib"
    out_dir: str | Path | None = None
    name: str = ""

    def __post_init__(self) -> None:
        for name in ("data", "answers", "out_dir"):  # paths are kept as strings: the spec is a JSON-able record
            value = getattr(self, name)
            if isinstance(value, Path):
                object.__setattr__(self, name, str(value))
        require(self.setting in SETTINGS, "setting", f"must be one of {list(SETTINGS)}, got {self.setting!r}")
        require(self.dedup in DEDUP_MODES, "dedup", f"must be one of {list(DEDUP_MODES)}, got {self.dedup!r}")
        require(self.key in KEY_CHOICES, "key", f"must be one of {list(KEY_CHOICES)}, got {self.key!r}")
        require(self.wrong_key_index >= 0, "wrong_key_index", f"must be >= 0, got {self.wrong_key_index}")
        require(
            self.prompt_exclusion in PROMPT_EXCLUSION_MODES,
            "prompt_exclusion",
            f"must be one of {list(PROMPT_EXCLUSION_MODES)}, got {self.prompt_exclusion!r}",
        )
        require(
            self.phi is None or self.phi == "all" or (isinstance(self.phi, int) and self.phi >= 1),
            "phi",
            f"must be null, 'all' or a top-N count >= 1, got {self.phi!r}",
        )
        require(self.max_texts is None or self.max_texts >= 1, "max_texts", f"must be >= 1, got {self.max_texts}")
        require(self.max_new_tokens >= 1, "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")
        require(self.mia_score in MIA_SCORES, "mia_score", f"must be one of {list(MIA_SCORES)}")
        require(self.answers is None or self.setting == "closed", "answers", "only the closed setting reads answers")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectionSpec:
        """Build from a plain mapping; unknown keys or wrong types raise ConfigError naming the field."""
        return from_dict(cls, dict(data))

    @property
    def text_split(self) -> str:
        """The split holding the test text (and the prompts of the closed setting)."""
        return self.split or ("known" if self.supervised else "heldout")


@dataclass(frozen=True)
class TextRecords:
    """Token ids (and texts) of one split of Alice's data, plus the public watermark columns found there."""

    prompts: list[list[int]]
    answers: list[list[int]]
    texts: list[str] | None
    member: list[bool] | None
    scheme: set[str]
    k: set[int]
    key_fingerprints: set[str]


def load_dataset_folder(folder: Path):
    """`datasets.load_from_disk(folder)`, with an error naming the folder when it cannot be read."""
    import datasets

    try:
        return datasets.load_from_disk(str(folder))
    except Exception as err:  # datasets raises several types for unreadable or odd folders
        raise ValueError(f"{folder}: not a readable datasets folder ({type(err).__name__}: {err})") from err


def load_records(folder: str | Path, max_texts: int | None = None) -> TextRecords:
    """Read a `datasets.save_to_disk` split (columns `prompt_ids`, `answer_ids`; `answer`, `member` if present)."""
    import datasets

    folder = Path(folder).expanduser()
    if not (folder / "dataset_info.json").is_file() and not (folder / "state.json").is_file():
        raise FileNotFoundError(f"{folder}: not found, or not a datasets.save_to_disk folder")
    data = load_dataset_folder(folder)
    if isinstance(data, datasets.DatasetDict):
        raise ValueError(f"{folder}: a DatasetDict; point to one split (e.g. <mix>/heldout)")
    missing = [c for c in ("prompt_ids", "answer_ids") if c not in data.column_names]
    if missing:
        raise ValueError(f"{folder}: missing column(s) {missing}; has {data.column_names}")
    if max_texts is not None:
        data = data.select(range(min(max_texts, len(data))))
    if len(data) == 0:
        raise ValueError(f"{folder}: the dataset is empty")
    columns = data.column_names

    def values(name: str) -> list[Any] | None:
        return list(data[name]) if name in columns else None

    return TextRecords(
        prompts=[list(p) for p in data["prompt_ids"]],
        answers=[list(a) for a in data["answer_ids"]],
        texts=values("answer"),
        member=values("member"),
        scheme=set(values("scheme") or []),
        k=set(values("k") or []),
        key_fingerprints=set(values("key_fingerprint") or []) - {""},
    )


def resolve_device(device: str) -> str:
    """`auto` -> cuda when available, else cpu."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {device} requested but no CUDA device is available")
    return device


class DetectionActor:
    """Holds one checkpoint (model + tokenizer from a local folder) and runs radioactivity tests on it.

    The key comes from `key` (tests), or `key_file`, or the RADIO_WATERMARK_KEY environment variable
    (`radio.keys.load_key`); only its fingerprint appears in results. The watermark's `vocab_size` must equal the
    model's logits width.
    """

    def __init__(
        self,
        model_dir: str | Path,
        watermark: WatermarkSpec | Mapping[str, Any],
        *,
        key: int | bytes | str | None = None,
        key_file: str | Path | None = None,
        data: str | Path | None = None,
        role: str = "model",
        device: str = "auto",
        amp: str | None = None,
        batch_size: int = 32,
        seq_len: int = 256,
        model: Any = None,
        tokenizer: Any = None,
    ) -> None:
        from radio.keys import load_key
        from radio.models.loading import VocabMismatchError, load_model, load_tokenizer, model_vocab_size

        if role not in ROLES:
            raise ValueError(f"role: must be one of {list(ROLES)}, got {role!r}")
        spec = watermark if isinstance(watermark, WatermarkSpec) else from_dict(WatermarkSpec, dict(watermark))
        self.model_dir = Path(model_dir).expanduser()
        self.role = role
        self.default_data = None if data is None else Path(data).expanduser()
        self.amp = amp
        self.batch_size = batch_size
        self.seq_len = seq_len
        start = time.perf_counter()
        self.device = resolve_device(device)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(self.model_dir)
        self.model = model if model is not None else load_model(self.model_dir, device=self.device)
        self.load_s = time.perf_counter() - start
        self.vocab_size = model_vocab_size(self.model)
        if spec.vocab_size != self.vocab_size:
            raise VocabMismatchError(
                f"watermark vocab_size {spec.vocab_size} but model {self.model_dir} has {self.vocab_size} logits"
            )
        self._key = key if key is not None else load_key(key_file)
        self.watermark = Watermark.from_spec(spec, self._key)
        self._records: dict[tuple, TextRecords] = {}
        self._readings: dict[tuple, ReadingPass] = {}
        self._answers: dict[tuple, Answers] = {}
        self._phis: dict[tuple, Phi] = {}
        self._mia: dict[tuple, SampleScores] = {}

    # -- inputs, cached -------------------------------------------------------------------------------------
    def _data(self, spec: DetectionSpec) -> Path:
        data = Path(spec.data).expanduser() if spec.data is not None else self.default_data
        if data is None:
            raise ValueError("data: no mix folder given (spec.data or the actor's default)")
        if not data.is_dir():
            raise FileNotFoundError(f"data {data}: folder not found")
        return data

    def records(self, data: Path, split: str, max_texts: int | None) -> TextRecords:
        """One split of Alice's data, read once."""
        cache_key = (str(data), split, max_texts)
        if cache_key not in self._records:
            records = load_records(data / split, max_texts)
            wm = self.watermark
            if records.k and records.k != {wm.k}:
                raise ValueError(f"{data / split}: watermarked with k={sorted(records.k)}, the watermark has k={wm.k}")
            if records.scheme and records.scheme - {"none"} and records.scheme - {"none"} != {wm.spec.scheme}:
                raise ValueError(f"{data / split}: scheme {sorted(records.scheme)}, the watermark is {wm.spec.scheme}")
            high = max((max(a) for a in records.answers if a), default=-1)
            if high >= self.vocab_size:
                raise ValueError(f"{data / split}: token id {high} >= the model's vocab_size {self.vocab_size}")
            self._records[cache_key] = records
        return self._records[cache_key]

    def reading(self, data: Path, split: str, max_texts: int | None) -> ReadingPass:
        """B's reading pass over the answers of one split (key-independent, cached)."""
        cache_key = (str(data), split, max_texts, self.watermark.k)
        if cache_key not in self._readings:
            records = self.records(data, split, max_texts)
            self._readings[cache_key] = read_texts(
                self.model,
                records.answers,
                self.watermark.k,
                seq_len=self.seq_len,
                batch_size=self.batch_size,
                separator_id=self.tokenizer.eos_token_id,
                pad_id=self.tokenizer.pad_token_id or 0,
                amp=self.amp,
            )
        return self._readings[cache_key]

    def phi(self, data: Path, spec: DetectionSpec) -> Phi | None:
        """phi from Alice's text (never from B's outputs), cached."""
        if spec.phi is None:
            return None
        split = spec.phi_split or spec.text_split
        top_n = None if spec.phi == "all" else int(spec.phi)
        cache_key = (str(data), split, spec.max_texts, top_n)
        if cache_key not in self._phis:
            records = self.records(data, split, spec.max_texts)
            self._phis[cache_key] = build_phi(
                records.answers, self.watermark.k, top_n, source=str(data / split), prompts=records.prompts
            )
        return self._phis[cache_key]

    def answers(self, data: Path | None, spec: DetectionSpec) -> Answers:
        """B's answers to the prompts of the test split (cached), or answers read from `spec.answers`."""
        if spec.answers is not None:
            from radio.cli.detect_text import read_jsonl_records

            path = Path(spec.answers).expanduser()
            text_fields = spec.answer_field not in ("answer_ids", "token_ids")
            got = read_jsonl_records(
                path, spec.answer_field, spec.prompt_field, self.model_dir if text_fields else None, self.vocab_size
            )
            prompts = got.prompts if got.prompts is not None else [[] for _ in got.sequences]
            return Answers(prompts, got.sequences, float("nan"), 0.0, f"jsonl:{path.name}")
        assert data is not None
        cache_key = (str(data), spec.text_split, spec.max_texts, spec.greedy, spec.max_new_tokens, spec.seed)
        if cache_key not in self._answers:
            records = self.records(data, spec.text_split, spec.max_texts)
            self._answers[cache_key] = generate_answers(
                self.model,
                self.tokenizer,
                records.prompts,
                max_new_tokens=spec.max_new_tokens,
                batch_size=self.batch_size,
                greedy=spec.greedy,
                temperature=self.watermark.spec.temperature,
                top_p=self.watermark.spec.top_p,
                seed=spec.seed,
            )
        return self._answers[cache_key]

    def mia_scores(self, data: Path, split: str, max_texts: int | None) -> SampleScores:
        """B's per-sample MIA scores on one split (cached)."""
        cache_key = (str(data), split, max_texts)
        if cache_key not in self._mia:
            records = self.records(data, split, max_texts)
            self._mia[cache_key] = sample_scores(
                self.model,
                records.prompts,
                records.answers,
                records.texts,
                batch_size=self.batch_size,
                pad_id=self.tokenizer.pad_token_id or 0,
                amp=self.amp,
            )
        return self._mia[cache_key]

    # -- tests ----------------------------------------------------------------------------------------------
    def watermark_for(self, spec: DetectionSpec) -> Watermark:
        """The correct watermark, or the `wrong_key_index`-th wrong key on the same public parameters."""
        if spec.key == "correct":
            return self.watermark
        return self.watermark.with_key(derive_key(self._key, spec.wrong_key_index))

    def _control(self, spec: DetectionSpec) -> str:
        if spec.key == "wrong":
            return "wrong-key"
        return "base-model" if self.role == "base-model" else "none"

    def run(self, spec: DetectionSpec | Mapping[str, Any]) -> dict[str, Any]:
        """Run one test and return its JSON-able row (spec fields, model, result; never the key)."""
        spec = spec if isinstance(spec, DetectionSpec) else DetectionSpec.from_dict(spec)
        external = spec.setting == "closed" and spec.answers is not None
        data = self._data(spec) if not external or spec.phi is not None else None
        wm = self.watermark_for(spec)
        common = {"model_dir": str(self.model_dir), "role": self.role, "spec": asdict(spec)}
        if spec.setting == "mia":
            row = self._run_mia(data, spec)  # type: ignore[arg-type]
        else:
            phi = self.phi(data, spec) if data is not None else None
            if spec.phi is not None and phi is None:
                raise ValueError("phi: needs spec.data (Alice's text); it is never built from B's answers")
            info = {"data": None if data is None else str(data), "split": spec.text_split, "name": spec.name}
            if spec.setting == "open":
                result = open_model_test(
                    wm,
                    self.reading(data, spec.text_split, spec.max_texts),  # type: ignore[arg-type]
                    phi=phi,
                    dedup=spec.dedup,
                    in_sequence_exclusion=spec.in_sequence_exclusion,
                    supervised=spec.supervised,
                    control=self._control(spec),
                    mid_p=spec.mid_p,
                    info=info,
                )
            else:
                got = self.answers(data, spec)
                result = closed_model_test(
                    wm,
                    got.answers,
                    got.prompts,
                    phi=phi,
                    dedup=spec.dedup,
                    prompt_exclusion=spec.prompt_exclusion,
                    supervised=spec.supervised,
                    control=self._control(spec),
                    mid_p=spec.mid_p,
                    tokens_per_s=got.tokens_per_s,
                    wall_s=got.wall_s,
                    info={**info, "sampling": got.sampling},
                )
            row = result.to_dict()
            if phi is not None and spec.out_dir is not None:
                row["phi_path"] = str(phi.save(Path(spec.out_dir) / "phi"))
        row.update(common)
        if spec.out_dir is not None:
            out = Path(spec.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / "result.json").write_text(json.dumps(row, indent=2, sort_keys=True, default=str))
        return row

    def _run_mia(self, data: Path, spec: DetectionSpec) -> dict[str, Any]:
        """MIA: the suspected set (`known`, or spec.split) against fresh non-members (`heldout`)."""
        suspected_split = spec.split or "known"
        suspected = self.mia_scores(data, suspected_split, spec.max_texts)
        reference = self.mia_scores(data, "heldout", spec.max_texts)
        records = self.records(data, suspected_split, spec.max_texts)
        d = None if records.member is None else sum(records.member) / len(records.member)
        results = {score: mia_test(suspected, reference, score, d) for score in ("zlib", "min_k")}
        if spec.mia_score not in results:
            results[spec.mia_score] = mia_test(suspected, reference, spec.mia_score, d)
        row = results[spec.mia_score].to_dict()
        row.update({"setting": "mia", "control": self._control(spec), "split": suspected_split})
        row["scores"] = {name: r.to_dict() for name, r in results.items()}
        return row

    def run_all(self, specs: Iterable[DetectionSpec | Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Run every spec in order (shared work cached); one row per spec."""
        return [self.run(spec) for spec in specs]


def standard_specs(data: str | Path, phi_top_n: int | None = None, wrong_keys: int = 1) -> list[DetectionSpec]:
    """The usual suite on one mix: open/closed x supervised/unsupervised, phi variants, wrong keys, and MIA."""
    data = str(data)
    specs = []
    for setting in ("open", "closed"):
        for supervised in (False, True):
            phi: int | str | None = (phi_top_n or "all") if supervised else phi_top_n
            for use_phi in (None, phi) if phi is not None else (None,):
                base = {"setting": setting, "supervised": supervised, "data": data, "phi": use_phi}
                specs.append(DetectionSpec(**base))
                specs += [DetectionSpec(**base, key="wrong", wrong_key_index=i) for i in range(wrong_keys)]
    specs.append(DetectionSpec(setting="mia", supervised=True, data=data))
    return specs
