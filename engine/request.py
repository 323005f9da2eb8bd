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
from typing import TYPE_CHECKING, Any, Literal

from .audio.delivery import PLAIN, Delivery
from .constants import DELIVERY_SAMPLE_RATE, MAX_CUE_S, MIN_CUE_S
from .errors import RequestError
from .timebase import seconds, to_samples

if TYPE_CHECKING:  # annotation only: keeps this module free of the film package's imports
    from .film.features import FilmFeatures

SchedulerName = Literal["ddim", "dpmpp", "euler"]
SCHEDULERS: tuple[str, ...] = ("ddim", "dpmpp", "euler")
BackendName = Literal["auto", "torch", "ort", "trt"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "ort", "trt")

ProgressFn = Callable[[str, float, str], None]
"""progress(stage, fraction 0..1 of that stage, message). Stages: "picture", "controls", "denoise", "decode",
"vocode", "deliver"."""
CancelFn = Callable[[], bool]
"""should_cancel() -> True stops the render between denoising steps with `RenderCancelled`."""


@dataclass(frozen=True)
class RenderRequest:
    """Everything one cue needs. `video=None` scores without picture (picture guidance off)."""

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
    seed: int = 0
    steps: int = 25
    scheduler: SchedulerName = "dpmpp"
    picture_guidance: float = 2.0
    control_guidance: float = 3.0
    control_strength: float = 1.0
    # How far the picture shapes the loudness of a theme that has dynamics of its own: 0 keeps the theme's, 1 takes
    # the picture's (motion and cut accents); between, the two dB curves are mixed. Without a theme the picture's
    # dynamics are used whatever this is (engine/cue_controls.py).
    picture_dynamics: float = 0.5
    sample_rate: int = DELIVERY_SAMPLE_RATE
    target_lufs: float = -23.0  # EBU R128 programme loudness
    bundle: Path | None = None  # None: the default bundle shipped in the package
    backend: BackendName = "auto"
    vocoder: Literal["auto", "network", "griffin-lim"] = "auto"
    # Precomputed picture, instead of `video`: the film features of an edited timeline region (its clips encoded
    # over their source ranges and joined in record order by bridge/timelines/film_of_region.py).
    film_features: FilmFeatures | None = None
    # A cue plan (engine/plan: PLAN.json or PLAN.mid) to render exactly: its melody and dynamics are the controls
    # (no theme fitting, no picture dynamics mixed in: the plan already holds them).
    plan: Path | None = None
    # How the cue is delivered: plain 24-bit WAV, or BWF with `bext`/`iXML` (a timeline cue's time reference and
    # names), mastered and written once by engine/audio/delivery.py. Its JSON (`Delivery.to_json`) is accepted too.
    delivery: Delivery = PLAIN
    # With a v2 bundle (engine/render_v2.py): also write the lead / accompaniment / percussion stems beside the mix
    # (OUT.<stem>.wav, same rate, length and start; they sum to the mix). A v1 bundle has no stems: refused.
    stems: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.delivery, dict):  # a request read back from JSON (a cue's sidecar, a bridge job)
            object.__setattr__(self, "delivery", Delivery.from_json(self.delivery))

    def validate(self) -> None:
        """Raise `RequestError` naming the first bad field."""
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
        if self.scheduler not in SCHEDULERS:
            raise RequestError(f"unknown scheduler {self.scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
        if self.backend not in BACKENDS:
            raise RequestError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if not 1 <= self.steps <= 1000:
            raise RequestError(f"steps must be 1..1000, got {self.steps}")
        if not 0 <= self.seed < 2**63:
            raise RequestError(f"seed must be 0..2**63-1, got {self.seed}")
        if not 8000 <= self.sample_rate <= 192000:
            raise RequestError(f"sample rate must be 8000..192000 Hz, got {self.sample_rate}")
        for name in ("picture_guidance", "control_guidance", "control_strength"):
            v = getattr(self, name)
            if not math.isfinite(v) or not 0 <= v <= 20:
                raise RequestError(f"{name.replace('_', ' ')} must be 0..20, got {v}")
        if not math.isfinite(self.picture_dynamics) or not 0 <= self.picture_dynamics <= 1:
            raise RequestError(f"picture dynamics must be 0..1, got {self.picture_dynamics}")
        sources = [s for s in (self.midi, self.reference_audio, self.maestro) if s is not None]
        if len(sources) > 1:
            raise RequestError("give at most one of midi, reference audio, maestro")
        if self.plan is not None and sources:
            raise RequestError("a plan holds its own melody: give a plan or a midi / reference audio / maestro, "
                               "not both")
        if self.theme is not None and self.maestro is None:
            raise RequestError("a theme id needs a maestro (--maestro NAME --theme ID)")

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
