"""Everything a render request can be refused for, checked before any heavy work: before the model loads, before
the picture is encoded, before a second of audio is computed.

Light on purpose (no torch, no model code: PyAV, mido and soundfile are imported inside the checks), so that a front
end answers a typo in a fraction of a second. `render_cue` runs `check_request` first; the CLI runs it before it
even imports the render path.

Checked: the request's ranges (`RenderRequest.validate`); each input exists and reads (the video opens and a
picture decodes at the start and end of the range, the MIDI parses and the melody track exists, the reference
holds audio, the maestro and theme exist, the bundle's manifest reads); the cue is at least `MIN_CUE_S` long
whether its length is given or taken from the picture; no output (the WAV or a sidecar) is one of the inputs; the
output folder exists, takes a real file, and has room for the cue.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

from .constants import MIN_CUE_S
from .errors import AudioLoadError, RequestError
from .request import RenderRequest, cue_n_samples

WAV_BYTES_PER_SAMPLE = 3  # PCM 24-bit, mono: what render_cue delivers
SPACE_MARGIN_BYTES = 1 << 20  # JSON sidecar, fitted MIDI, file-system slack


class OutputError(RequestError):
    """An output that cannot be written: it is one of the inputs, its folder is missing or read-only, or full."""


def sidecar_paths(output: Path) -> dict[str, Path]:
    """Files written beside OUT.wav: OUT.controls.npz, OUT.json (metadata), OUT.theme.mid (fitted theme),
    OUT.latent.npy (the final latent: what regenerating a range or conforming the cue holds fixed, engine/regenerate.py)."""
    stem = Path(output).with_suffix("")
    return {"controls": Path(f"{stem}.controls.npz"), "metadata": Path(f"{stem}.json"),
            "theme": Path(f"{stem}.theme.mid"), "latent": Path(f"{stem}.latent.npy")}


def output_paths(output: Path) -> list[Path]:
    """The WAV and every sidecar a render of `output` may write."""
    return [Path(output), *sidecar_paths(output).values()]


def input_paths(request: RenderRequest) -> dict[str, Path]:
    """The request's input files by field name (video, midi, reference_audio, and any file field added later),
    derived from the dataclass so that a new input is protected without a list to update."""
    skip = {"output", "bundle"}
    return {f.name: Path(v) for f in fields(request)  # the fields annotated as paths (annotations are strings here)
            if f.name not in skip and "Path" in str(f.type) and (v := getattr(request, f.name)) is not None}


def same_file(a: Path, b: Path) -> bool:
    """True when `a` and `b` name one file: the same resolved path, or (both existing) the same inode (a hard link,
    a bind mount, a case-insensitive file system)."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def refuse_input_overwrite(outputs: list[Path], inputs: dict[str, Path]) -> None:
    """OutputError when an output would replace an input: no command ever writes over what it reads."""
    for out in outputs:
        for label, inp in inputs.items():
            if same_file(out, inp):
                raise OutputError(f"output {out} is the {label.replace('_', ' ')} input {inp}; a render never "
                                  f"overwrites its inputs: choose another output name")


def probe_writable(folder: Path) -> None:
    """Create, write and delete a real temporary file in `folder`: OutputError when the folder is missing,
    read-only, not ours, or full (permissions alone do not tell: root, ACLs, read-only mounts)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=".filmscore-probe-", dir=folder)
        try:
            os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as e:
        raise OutputError(f"output folder {folder}: cannot write there ({e.strerror or e})") from None


def check_space(folder: Path, need_bytes: int) -> None:
    """OutputError when `folder`'s file system has less free space than `need_bytes` plus a margin."""
    free = shutil.disk_usage(folder).free
    if free < need_bytes + SPACE_MARGIN_BYTES:
        raise OutputError(f"output folder {folder}: {free / 1e6:.1f} MB free, the cue and its sidecars need about "
                          f"{(need_bytes + SPACE_MARGIN_BYTES) / 1e6:.1f} MB")


def cue_bytes(duration_s: float, sample_rate: int) -> int:
    """The delivered WAV plus its controls file: 24-bit mono samples, and 13 float32 per 10 ms control frame."""
    return cue_n_samples(duration_s, sample_rate) * WAV_BYTES_PER_SAMPLE + int(duration_s * 100) * 13 * 4


@dataclass(frozen=True)
class CheckedRequest:
    """What the checks learnt: the video's stream info (None without a video), the cue's length as far as it is
    known before decoding (the request's, else the container's from the start; None when neither says), and the
    theme the request names (a maestro's theme is drawn from the seed here, the same draw the render makes)."""

    video: object | None  # film.decode.VideoInfo
    duration_s: float | None
    theme: object | None  # controls.theme.Theme


def check_reference_audio(path: Path) -> None:
    """The reference recording opens and holds an audio stream (soundfile's formats, else anything PyAV reads)."""
    import soundfile as sf

    try:
        if sf.info(str(path)).frames > 0:
            return
    except Exception:  # noqa: BLE001 (libsndfile refuses most containers; PyAV decides below)
        pass
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                raise AudioLoadError(f"{path}: no audio stream")
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise AudioLoadError(f"{path}: not a readable audio file ({e})") from None


def check_stems(request: RenderRequest) -> None:
    """`RequestError` when the request asks for stems and its bundle is not a v2 bundle (a v1 bundle makes one mono
    mix): from bundle.json's tag alone, so the bridge refuses it before queueing."""
    from .bundle_manifest import BUNDLE_SCHEMA_V2, schema_of

    if request.stems and schema_of(request.bundle) != BUNDLE_SCHEMA_V2:
        raise RequestError(f"stems: bundle {request.bundle or 'default'} is a v1 bundle (one mono mix, no stems); "
                           "stems need a v2 bundle (--bundle DIR)")


def check_inputs(request: RenderRequest) -> CheckedRequest:
    """Validate the request and read each input just enough to know the render can use it (see the module doc)."""
    request.validate()
    request.check_files()
    from .bundle_manifest import bundle_dir, read_manifest, schema_of

    # v1 and v2 bundles render (engine/render_v2.py); each checked as itself
    read_manifest(bundle_dir(request.bundle), schema_of(request.bundle))
    check_stems(request)
    info = None
    duration = request.duration_s
    if request.video is not None:
        from .film.decode import check_range

        info = check_range(request.video, request.start_s, request.duration_s)
        if duration is None and info.duration_s is not None:
            duration = info.duration_s - request.start_s
            if duration < MIN_CUE_S:
                raise RequestError(f"{request.video}: {duration:.2f} s of picture from {request.start_s:.2f} s; a "
                                   f"cue is at least {MIN_CUE_S:g} s")
    elif request.film_features is not None and duration is None:
        duration = request.film_features.duration_s
    theme = None
    if request.midi is not None or request.maestro is not None:
        from .controls.request import theme_for_request

        theme = theme_for_request(midi=request.midi, maestro=request.maestro, theme=request.theme,
                                  track=request.midi_track, channel=request.midi_channel, seed=request.seed)
    if request.reference_audio is not None:
        check_reference_audio(Path(request.reference_audio))
    return CheckedRequest(info, duration, theme)


def check_output(request: RenderRequest, duration_s: float | None) -> None:
    """The output is a .wav in a folder that takes a real file and has room for the cue; neither it nor a sidecar
    is one of the request's inputs. Whether an existing output may be replaced is the front end's rule."""
    out = Path(request.output)
    if out.suffix.lower() != ".wav":
        raise RequestError(f"output {out}: must end in .wav")
    refuse_input_overwrite(output_paths(out), input_paths(request))
    probe_writable(out.parent)
    if duration_s is not None:
        check_space(out.parent, cue_bytes(duration_s, request.sample_rate))


def check_request(request: RenderRequest) -> CheckedRequest:
    """All of the above, inputs first: raises a FilmscoreError naming the first thing at fault."""
    checked = check_inputs(request)
    check_output(request, checked.duration_s)
    return checked

