"""The detection actor: load a checkpoint once, run a list of radioactivity tests on it, return JSON-able rows.

`DetectionActor` is a plain class (no Ray here): the sweep wraps it with `ray.remote`, or uses it from an
`Evaluation` (`load=lambda ckpt, p: DetectionActor(ckpt, watermark, key_file=...)`, `run=lambda a, t: a.run(t)`).
The base-model control is the same actor on the base checkpoint with `role="base-model"`.

A test is a `DetectionSpec` (or its flat dict); the actor looks its setting up by name in the registry
(`radio.detect.settings`) and lets it run. Work that does not depend on the key (B's reading pass, B's answers,
phi, MIA sample scores) is cached in the actor (`cached`), so the wrong-key control and calibration over many
keys cost scoring only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from radio.config import from_dict
from radio.detect.phi import Phi, build_phi
from radio.detect.records import TextRecords, load_records
from radio.detect.result import RadioactivityResult, derive_key
from radio.detect.settings import get_setting
from radio.detect.spec import DetectionSpec
from radio.device import resolve_device
from radio.watermark import Watermark, WatermarkConfig

ROLES = ("model", "base-model")
T = TypeVar("T")


class DetectionActor:
    """Holds one checkpoint (model + tokenizer from a local folder) and runs radioactivity tests on it.

    The key comes from `key` (tests), or `key_file`, or the RADIO_WATERMARK_KEY environment variable
    (`radio.keys.load_key`); only its fingerprint appears in results. The watermark's vocabulary is the model's
    logits width. `temperature` and `top_p` are B's sampler when a setting asks B for answers (A's sampler, so
    that B's answers are drawn like A's data). `reading_top_m`: how many of B's most likely tokens every reading
    pass keeps (0: only what each test asks for; `run_all` raises it to what its tests need).
    """

    def __init__(
        self,
        model_dir: str | Path,
        watermark: WatermarkConfig | Mapping[str, Any],
        *,
        key: int | bytes | str | None = None,
        key_file: str | Path | None = None,
        data: str | Path | None = None,
        role: str = "model",
        device: str = "auto",
        amp: str | None = None,
        batch_size: int = 32,
        seq_len: int = 256,
        temperature: float = 0.8,
        top_p: float = 0.95,
        model: Any = None,
        tokenizer: Any = None,
        reading_top_m: int = 0,
    ) -> None:
        from radio.keys import load_key
        from radio.models.loading import load_model, load_tokenizer, model_vocab_size

        if role not in ROLES:
            raise ValueError(f"role: must be one of {list(ROLES)}, got {role!r}")
        config = watermark if isinstance(watermark, WatermarkConfig) else from_dict(WatermarkConfig, dict(watermark))
        self.model_dir = Path(model_dir).expanduser()
        self.role = role
        self.default_data = None if data is None else Path(data).expanduser()
        self.amp = amp
        self.batch_size = batch_size
        self.seq_len = seq_len
        # B's top-m tokens kept by every reading pass (the distribution tests need them): one forward pass then
        # serves the top-1 and the distribution-based tests alike, whichever runs first.
        self.reading_top_m = reading_top_m
        start = time.perf_counter()
        self.device = resolve_device(device)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(self.model_dir)
        self.model = model if model is not None else load_model(self.model_dir, device=self.device)
        self.load_s = time.perf_counter() - start
        self.vocab_size = model_vocab_size(self.model)
        self._key = key if key is not None else load_key(key_file)
        self.watermark = Watermark(
            config, key=self._key, vocab_size=self.vocab_size, temperature=temperature, top_p=top_p
        )
        self._records: dict[tuple, TextRecords] = {}
        self._phis: dict[tuple, Phi] = {}
        self._cache: dict[Hashable, Any] = {}

    # -- inputs, cached -------------------------------------------------------------------------------------
    def cached(self, key: Hashable, build: Callable[[], T], accept: Callable[[T], bool] | None = None) -> T:
        """`build()` once per `key` for this actor (settings keep their key-independent work here).

        `accept`: a cached value it rejects (e.g. a reading pass that kept too little) is built again and replaced.
        """
        if key not in self._cache or (accept is not None and not accept(self._cache[key])):
            self._cache[key] = build()
        return self._cache[key]

    def data_folder(self, spec: DetectionSpec) -> Path:
        """The mix folder of the test (its own, else the actor's default); errors name the field."""
        data = Path(spec.data).expanduser() if spec.data is not None else self.default_data
        if data is None:
            raise ValueError("data: no mix folder given (spec.data or the actor's default)")
        if not data.is_dir():
            raise FileNotFoundError(f"data {data}: folder not found")
        return data

    def records(self, data: Path, split: str, max_texts: int | None) -> TextRecords:
        """One split of Alice's data, read once and checked against the watermark and the model."""
        cache_key = (str(data), split, max_texts)
        if cache_key not in self._records:
            records = load_records(data / split, max_texts)
            wm = self.watermark
            if records.k and records.k != {wm.k}:
                raise ValueError(f"{data / split}: watermarked with k={sorted(records.k)}, the watermark has k={wm.k}")
            scheme = wm.config.scheme
            if records.scheme and records.scheme - {"none"} and records.scheme - {"none"} != {scheme}:
                raise ValueError(f"{data / split}: scheme {sorted(records.scheme)}, the watermark is {scheme}")
            high = max((max(a) for a in records.answers if a), default=-1)
            if high >= self.vocab_size:
                raise ValueError(f"{data / split}: token id {high} >= the model's vocab_size {self.vocab_size}")
            self._records[cache_key] = records
        return self._records[cache_key]

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

    def reference_model(self, path: Path) -> Any:
        """A reference model for the reading tests (loaded once, on B's device), checked to share B's tokenizer."""
        from radio.models.loading import load_model, load_tokenizer, model_vocab_size, tokenizer_digest

        def load() -> Any:
            if not path.is_dir():
                raise FileNotFoundError(f"reference {path}: folder not found")
            if tokenizer_digest(load_tokenizer(path)) != tokenizer_digest(self.tokenizer):
                raise ValueError(f"reference {path}: its tokenizer differs from B's ({self.model_dir})")
            model = load_model(path, device=self.device)
            if model_vocab_size(model) != self.vocab_size:
                raise ValueError(f"reference {path}: logits width {model_vocab_size(model)}, B's is {self.vocab_size}")
            return model

        return self.cached(("reference-model", str(path)), load)

    # -- what the watermark settings share ------------------------------------------------------------------
    def watermark_for(self, spec: DetectionSpec) -> Watermark:
        """The correct watermark, or the `wrong_key_index`-th wrong key on the same public parameters."""
        if spec.key == "correct":
            return self.watermark
        return self.watermark.with_key(derive_key(self._key, spec.wrong_key_index))

    def control(self, spec: DetectionSpec) -> str:
        """Which control this test is: `wrong-key`, `base-model` (the actor's role) or `none`."""
        if spec.key == "wrong":
            return "wrong-key"
        return "base-model" if self.role == "base-model" else "none"

    def watermark_inputs(self, spec: DetectionSpec, data: Path | None) -> tuple[Watermark, Phi | None, dict]:
        """The test's watermark (key per `spec.key`), phi (from Alice's text only) and the row's info fields."""
        phi = self.phi(data, spec) if data is not None else None
        if spec.phi is not None and phi is None:
            raise ValueError("phi: needs spec.data (Alice's text); it is never built from B's answers")
        info = {"data": None if data is None else str(data), "split": spec.text_split, "name": spec.name}
        return self.watermark_for(spec), phi, info

    def watermark_row(self, result: RadioactivityResult, phi: Phi | None, spec: DetectionSpec) -> dict[str, Any]:
        """The result's row, with phi saved beside result.json when the test has an `out_dir`."""
        row = result.to_dict()
        if phi is not None and spec.out_dir is not None:
            row["phi_path"] = str(phi.save(Path(spec.out_dir) / "phi"))
        return row

    # -- tests ----------------------------------------------------------------------------------------------
    def run(self, spec: DetectionSpec | Mapping[str, Any]) -> dict[str, Any]:
        """Run one test through its registered setting; its JSON-able row (spec, model, result; never the key)."""
        spec = spec if isinstance(spec, DetectionSpec) else DetectionSpec.from_dict(spec)
        setting = get_setting(spec.setting)
        data = self.data_folder(spec) if setting.needs_data(spec) else None
        row = setting.run(self, spec, data)
        row.update({"model_dir": str(self.model_dir), "role": self.role, "spec": spec.to_dict()})
        if spec.out_dir is not None:
            out = Path(spec.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / "result.json").write_text(json.dumps(row, indent=2, sort_keys=True, default=str))
        return row

    def run_all(self, specs: Iterable[DetectionSpec | Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Run every spec in order (shared work cached; one reading pass keeps what all of them need)."""
        parsed = [spec if isinstance(spec, DetectionSpec) else DetectionSpec.from_dict(spec) for spec in specs]
        wanted = [getattr(spec.options, "top_m", 0) for spec in parsed]
        self.reading_top_m = max([self.reading_top_m, *[m for m in wanted if isinstance(m, int)]])
        return [self.run(spec) for spec in parsed]


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
