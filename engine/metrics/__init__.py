"""Metrics that judge a model (docs/evaluation.md): control adherence (Music ControlNet's definitions), rhythm
against picture, originality, recognizability, FAD-proxy quality; the evaluation runner and its report.

Modules: `adherence`, `rhythm`, `transcription`, `originality`, `embedding` (self-trained audio embedding and
master classifier), `quality` (Fréchet distance, handcrafted statistics), `reference` (what the corpus gives the
metrics, cached), `evalset` (evaluation sets; `evalset/` is the shipped one), `runner` (systems and baselines),
`report` (JSON, Markdown, plots). Heavy imports stay inside the modules that need them.
"""

from .adherence import CueAdherence, dynamics_correlation, measure_adherence, melody_accuracy, pool_adherence

__all__ = ["CueAdherence", "dynamics_correlation", "measure_adherence", "melody_accuracy", "pool_adherence"]
