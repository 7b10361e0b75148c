"""Detection: text detection with the tape, and (built on it) the radioactivity tests.

- `detect_tokens` / `score_tokens`: one pooled test over token sequences (tape, prompt exclusion, phi);
- `read_texts` + `open_model_test`: open-model test (reading mode); `generate_answers` + `closed_model_test`:
  closed-model test; `build_phi`: the filter phi from Alice's text; `sample_scores` + `mia_test`: MIA baseline;
- `DetectionActor` / `DetectionSpec`: load a checkpoint once, run a list of tests (the sweep's detection actor).
"""

from radio.detect.actor import DetectionActor, DetectionSpec, standard_specs
from radio.detect.closed_model import closed_model_test, generate_answers
from radio.detect.mia import MIAResult, mia_test, sample_scores
from radio.detect.open_model import ReadingPass, open_model_test, read_texts
from radio.detect.phi import Phi, build_phi
from radio.detect.result import RadioactivityResult, derive_key
from radio.detect.text import DetectionResult, TokenScores, detect_tokens, pvalue_curve, score_tokens

__all__ = [
    "DetectionActor",
    "DetectionResult",
    "DetectionSpec",
    "MIAResult",
    "Phi",
    "RadioactivityResult",
    "ReadingPass",
    "TokenScores",
    "build_phi",
    "closed_model_test",
    "derive_key",
    "detect_tokens",
    "generate_answers",
    "mia_test",
    "open_model_test",
    "pvalue_curve",
    "read_texts",
    "sample_scores",
    "score_tokens",
    "standard_specs",
]
