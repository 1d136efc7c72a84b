"""Synthetic enterprise generator: HRIS exports, an LMS directory and xAPI statements, with ground truth.

Run `python -m turnover_demo.synth --out DIR` (see `--help`), or call `generate(SynthConfig(...))`.
The output contract is described in `generator.py` (layout), `hris_files.py` (HRIS CSVs) and
`lms_events.py` (SCIM users and xAPI statements); the identity-mess rates and their denominators
in `config.py`.
"""

from turnover_demo.synth.config import SynthConfig, SynthConfigError
from turnover_demo.synth.generator import generate

__all__ = ["SynthConfig", "SynthConfigError", "generate"]
