"""`RenderRequest` / `RenderResult`: one cue, as every front end (CLI, bridge, timeline batch) asks for it.

Times here are float seconds of the *source media* or cue; timeline code keeps OTIO rational time until it builds a
request (bridge/timelines), and sample counts come from the one conversion, `timebase.to_samples` (`cue_n_samples`
for a length in seconds). How the cue is delivered (plain WAV or BWF, its `bext`) is `delivery`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .audio.delivery import PLAIN, Delivery
from .constants import MAX_CUE_S, MIN_CUE_S
from .errors import RequestError
from .options import BACKENDS, SCHEDULERS, RenderOptions  # noqa: F401  (SCHEDULERS, BACKENDS: re-exported)
from .timebase import seconds, to_samples

if TYPE_CHECKING:  # annotation only: keeps this module free of the film package's imports
    from .film.features import FilmFeatures

ProgressFn = Callable[[str, float, str], None]
"""progress(stage, fraction 0..1 of that stage, message). Stages: "picture", "controls", "denoise", "decode",
"vocode", "deliver"."""
CancelFn = Callable[[], bool]
"""should_cancel() -> True stops the render between denoising steps with `RenderCancelled`."""


@dataclass(frozen=True)
class RenderRequest(RenderOptions):
    """Everything one cue needs: the render options (`RenderOptions`, engine/options.py: their one owner, inherited
    as keyword-only fields: seed, steps, ..., the plan overrides) and what this cue is. `video=None` scores without
    picture (picture guidance off)."""

    output: Path
    video: Path | None = None
    start_s: float = 0.0
    duration_s: float | None = None  # None: to the end of the video
    midi: Path | None = None
    reference_audio: Path | None = None
    maestro: str | None = None
    theme: str | None = None
    midi_track: int | None = None
    midi_channel: int | None = None
    hits_s: tuple[float, ...] = ()
    bundle: Path | None = None  # None: the default bundle shipped in the package
    # Precomputed picture, instead of `video`: the film features of an edited timeline region (its clips encoded
    # over their source ranges and joined in record order by bridge/timelines/film_of_region.py).
    film_features: FilmFeatures | None = None
    # A cue plan (engine/plan: PLAN.json or PLAN.mid) to render exactly: its melody and dynamics are the controls
    # (no theme fitting, no picture dynamics mixed in: the plan already holds them). Without one, plan overrides
    # (`RenderOptions` group "plan": tempo_bpm, key, ...) make one when the cue renders (`render_cue`).
    plan: Path | None = None
    # How the cue is delivered: plain 24-bit WAV, or BWF with `bext`/`iXML` (a timeline cue's time reference and
    # names), mastered and written once by engine/audio/delivery.py. Its JSON (`Delivery.to_json`) is accepted too.
    delivery: Delivery = PLAIN

    def __post_init__(self) -> None:
        if isinstance(self.delivery, dict):  # a request read back from JSON (a cue's sidecar, a bridge job)
            object.__setattr__(self, "delivery", Delivery.from_json(self.delivery))

    def validate(self) -> None:
        """Raise `RequestError` (or the option's own error, `RenderOptions.validate`) naming the first bad field."""
        self.delivery.validate()
        if self.duration_s is not None:
            if not math.isfinite(self.duration_s) or self.duration_s <= 0:
                raise RequestError(f"duration must be a positive number of seconds, got {self.duration_s}")
            if not MIN_CUE_S <= self.duration_s <= MAX_CUE_S:
                raise RequestError(f"duration {self.duration_s} s is outside {MIN_CUE_S}..{MAX_CUE_S} s")
        if not math.isfinite(self.start_s) or self.start_s < 0:
            raise RequestError(f"start must be >= 0 seconds, got {self.start_s}")
        if self.video is not None and self.film_features is not None:
            raise RequestError("give a video or precomputed film features, not both")
        if self.video is None and self.duration_s is None and self.film_features is None:
            raise RequestError("without a video, a duration is required")
        RenderOptions.validate(self)
        sources = [s for s in (self.midi, self.reference_audio, self.maestro) if s is not None]
        if len(sources) > 1:
            raise RequestError("give at most one of midi, reference audio, maestro")
        if self.plan is not None and sources:
            raise RequestError("a plan holds its own melody: give a plan or a midi / reference audio / maestro, "
                               "not both")
        if self.theme is not None and self.maestro is None:
            raise RequestError("a theme id needs a maestro (--maestro NAME --theme ID)")
        if self.plan_given and self.plan is not None:
            raise RequestError("a plan is rendered as it stands; change it with `filmscore plan` (the overrides) or "
                               "in a DAW, not with tempo/key/... overrides in the same request")
        if self.plan_given and self.reference_audio is not None:
            raise RequestError("plan overrides (tempo, key, ...) take a MIDI theme or a maestro, not reference audio")

    def check_files(self) -> None:
        """Raise `RequestError` naming the first input file that does not exist. Separate from `validate`: a
        queued request (the bridge) may name a file that is written only when its job starts."""
        for label, path in (("video", self.video), ("MIDI file", self.midi), ("reference audio", self.reference_audio),
                            ("plan", self.plan)):
            if path is not None and not Path(path).is_file():
                raise RequestError(f"{path}: no such {label}")

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.film_features is not None:  # arrays stay out of JSON: a summary says what the picture was
            ff = self.film_features
            d["film_features"] = {"layout": ff.layout, "n_frames": ff.n_frames, "duration_s": ff.duration_s}
        d["delivery"] = self.delivery.to_json()
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def cue_n_samples(duration_s: float, sample_rate: int) -> int:
    """A cue's length in seconds in samples: the rational `duration_s / 1` through the one conversion
    (`timebase.to_samples`, nearest sample). A timeline cue's length is `n / sample_rate` for the `n` its range
    gives (`to_samples(end) - to_samples(start)`), which comes back here as exactly `n`."""
    return to_samples(seconds(duration_s), sample_rate)


@dataclass
class RenderResult:
    """What a finished render produced. `metadata` is also written beside the WAV as OUT.json."""

    output: Path
    duration_s: float
    n_samples: int
    sample_rate: int
    seed: int
    controls_path: Path | None
    metadata: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
