"""Detection: text detection with the tape, and (built on it) the radioactivity tests.

- `detect_tokens` / `score_tokens`: one pooled test over token sequences (tape, prompt exclusion, phi);
- `read_texts` + `open_model_test`: open-model test (reading mode); `generate_answers` + `closed_model_test`:
  closed-model test; `build_phi`: the filter phi from Alice's text; `sample_scores` + `mia_test`: MIA baseline;
- `DetectionActor` / `DetectionSpec`: load a checkpoint once, run a list of tests (the sweep's detection actor);
  each test's setting is looked up by name in `radio.detect.settings` (one module per setting).
"""

from radio.detect.actor import DetectionActor, standard_specs
from radio.detect.closed_model import closed_model_test, generate_answers
from radio.detect.mia import MIAResult, mia_test, sample_scores
from radio.detect.open_model import ReadingPass, open_model_test, read_texts
from radio.detect.phi import Phi, build_phi
from radio.detect.result import RadioactivityResult, derive_key
from radio.detect.settings import Setting, all_settings, get_setting, register
from radio.detect.spec import DetectionSpec
from radio.detect.text import DetectionResult, TokenScores, detect_tokens, pvalue_curve, score_tokens

__all__ = [
    "DetectionActor",
    "DetectionResult",
    "DetectionSpec",
    "MIAResult",
    "Phi",
    "RadioactivityResult",
    "ReadingPass",
    "Setting",
    "TokenScores",
    "all_settings",
    "build_phi",
    "closed_model_test",
    "derive_key",
    "detect_tokens",
    "generate_answers",
    "get_setting",
    "mia_test",
    "open_model_test",
    "pvalue_curve",
    "read_texts",
    "register",
    "sample_scores",
    "score_tokens",
    "standard_specs",
]
