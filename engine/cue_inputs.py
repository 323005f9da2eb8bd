"""What a request asks the model to follow, read from it the same way by every renderer (v1's `render`, v2's
`render_v2`, `regenerate`): its picture's features, its controls and fitted theme, and the theme's summary for the
cue's JSON. Its own module so that neither renderer imports the other for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .request import ProgressFn, RenderRequest

if TYPE_CHECKING:
    from .controls.types import Controls
    from .film.features import FilmFeatures


def picture_of_request(request: RenderRequest, report: ProgressFn, faces: bool) -> FilmFeatures | None:
    """The request's picture features: the caller's own (a timeline region) or its video's range encoded; None
    without a picture. Shared with `regenerate`, which must see the picture the original render saw."""
    if request.film_features is not None:  # an edited region, encoded clip by clip by the caller
        return request.film_features
    if request.video is None:
        return None
    from .film import encode_video

    return encode_video(request.video, request.start_s, request.duration_s, faces=faces,
                        progress=lambda frac, msg="": report("picture", frac, msg))


def controls_of_request(request: RenderRequest, n_frames: int, film: FilmFeatures | None) -> tuple[Controls, object | None]:
    """The controls a request renders (its plan's, else its theme/reference/maestro fitted to the picture) and the
    fitted theme where there is one. Shared with `regenerate`, which must rebuild the original's controls."""
    if request.plan is not None:  # the plan is rendered as it stands (engine/plan/plan.py, CuePlan.controls)
        from .plan.plan import CuePlan

        return CuePlan.load(request.plan).controls(n_frames), None
    from .controls.request import controls_for_request

    hits = request.hits_s or (tuple(film.cuts_s) if film is not None else ())
    controls, fitted = controls_for_request(n_frames=n_frames, midi=request.midi,
                                            reference_audio=request.reference_audio, maestro=request.maestro,
                                            theme=request.theme, track=request.midi_track,
                                            channel=request.midi_channel, hits_s=hits, seed=request.seed)
    from .cue_controls import with_picture_dynamics

    return with_picture_dynamics(controls, film, request.picture_dynamics), fitted


def theme_summary(request: RenderRequest, fitted) -> dict | None:
    """Which theme the cue follows: a maestro's theme id (and whether the request named it or the seed drew it), or
    the MIDI file's theme; None without a theme."""
    if fitted is None:
        return None
    meta = fitted.theme.meta or {}
    return {"name": fitted.theme.name, "id": meta.get("id"), "maestro": meta.get("master"),
            "chosen_by": None if request.maestro is None else ("request" if request.theme else "seed"),
            "midi": None if request.midi is None else str(request.midi)}
