"""Audio -> leading melody `(T, 12)` at 100/s, for the melodic originality metric.

Two transcribers:
- **basic-pitch** (Spotify's ICASSP 2022 note model, Apache-2.0), run through ONNX Runtime on its ONNX file that the
  `basic-pitch` wheel ships; installed with `pip install --no-deps basic-pitch==0.4.0` (its declared dependencies
  pull TensorFlow, which it does not need with ONNX Runtime) plus `pretty_midi` and `resampy`. Polyphonic notes ->
  the highest sounding note per frame (skyline) -> one-hot pitch class.
- **chroma**: the melody of `controls_from_audio` (high-passed chroma argmax, Music ControlNet's recipe), used
  where basic-pitch is not installed. Reports name the transcriber they used.
"""

from __future__ import annotations

import contextlib
import logging
from functools import lru_cache
from typing import Literal

import numpy as np

from ..constants import CONTROL_FRAME_RATE, N_PITCH_CLASSES
from ..errors import FilmscoreError

Transcriber = Literal["auto", "basic-pitch", "chroma"]


class TranscriptionError(FilmscoreError):
    """A transcriber that is not installed or cannot run."""


@contextlib.contextmanager
def _quiet():
    """basic-pitch logs a warning for each framework it does not find (TensorFlow, CoreML, TFLite) on import."""
    logging.disable(logging.WARNING)
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def basic_pitch_available() -> bool:
    try:
        with _quiet():
            import basic_pitch  # noqa: F401
            import basic_pitch.note_creation  # noqa: F401
    except Exception:  # any import failure (missing pretty_midi, resampy, ...) means: not usable
        return False
    return True


def resolve(transcriber: Transcriber) -> str:
    """"auto" -> "basic-pitch" where it imports, else "chroma"; an explicit "basic-pitch" that cannot run raises."""
    if transcriber == "chroma":
        return "chroma"
    if transcriber not in ("auto", "basic-pitch"):
        raise TranscriptionError(f"unknown transcriber {transcriber!r}; choose auto, basic-pitch or chroma")
    if basic_pitch_available():
        return "basic-pitch"
    if transcriber == "basic-pitch":
        raise TranscriptionError("basic-pitch is not installed: pip install --no-deps basic-pitch==0.4.0 "
                                 "pretty_midi resampy")
    return "chroma"


@lru_cache(maxsize=1)
def _session():
    import onnxruntime as ort

    with _quiet():
        from basic_pitch import ICASSP_2022_MODEL_PATH
    path = str(ICASSP_2022_MODEL_PATH)
    if not path.endswith(".onnx"):
        from pathlib import Path

        path = str(Path(path).with_suffix(".onnx"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # the machines running evaluations share their cores with training
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def basic_pitch_notes(wave: np.ndarray, sr: int) -> list[tuple[float, float, int]]:
    """Notes (onset s, offset s, MIDI pitch) of a mono recording `(n,)` at `sr` Hz, basic-pitch's default
    thresholds (onset 0.5, frame 0.3, 127.7 ms minimum note) with its "melodia trick"."""
    with _quiet():
        from basic_pitch import constants as bpc
        from basic_pitch import note_creation
        from basic_pitch.inference import unwrap_output, window_audio_file

    from ..audio.io import resample

    y = resample(np.asarray(wave, np.float32), sr, bpc.AUDIO_SAMPLE_RATE)
    n_overlap = 30
    overlap_len = n_overlap * bpc.FFT_HOP
    hop = bpc.AUDIO_N_SAMPLES - overlap_len
    padded = np.concatenate([np.zeros(overlap_len // 2, np.float32), y])
    sess = _session()
    out: dict[str, list[np.ndarray]] = {"note": [], "onset": [], "contour": []}
    names = ["StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0"]
    for window, _ in window_audio_file(padded, hop):
        res = sess.run(names, {"serving_default_input_2:0": window[None].astype(np.float32)})
        for k, v in zip(("note", "onset", "contour"), res):
            out[k].append(v)
    model_output = {k: unwrap_output(np.concatenate(v), y.size, n_overlap) for k, v in out.items()}
    min_len = int(np.round(127.70 / 1000 * (bpc.AUDIO_SAMPLE_RATE / bpc.FFT_HOP)))
    with _quiet():
        _, events = note_creation.model_output_to_notes(model_output, onset_thresh=0.5, frame_thresh=0.3,
                                                        min_note_len=min_len, melodia_trick=True)
    return sorted((float(a), float(b), int(p)) for a, b, p, *_ in events)


def skyline(notes: list[tuple[float, float, int]], n_frames: int, rate: int = CONTROL_FRAME_RATE) -> np.ndarray:
    """`(n_frames, 12)` one-hot pitch class of the highest note sounding at each frame's centre (rests all zero),
    the leading-voice rule of the MIDI controls (engine/controls/midi.py)."""
    top = np.full(n_frames, -1, np.int64)
    for on, off, pitch in notes:
        a, b = max(0, int(round(on * rate))), min(n_frames, int(round(off * rate)))
        if b > a:
            top[a:b] = np.maximum(top[a:b], pitch)
    out = np.zeros((n_frames, N_PITCH_CLASSES), np.float32)
    rows = np.nonzero(top >= 0)[0]
    out[rows, top[rows] % N_PITCH_CLASSES] = 1.0
    return out


def melody_from_audio(wave: np.ndarray, sr: int, transcriber: Transcriber = "auto") -> tuple[np.ndarray, str]:
    """`(T, 12)` one-hot leading melody at 100/s (T = ceil(duration * 100)) and the transcriber's name."""
    name = resolve(transcriber)
    n_frames = int(np.ceil(np.asarray(wave).shape[0] * CONTROL_FRAME_RATE / sr))
    if name == "basic-pitch":
        return skyline(basic_pitch_notes(wave, sr), n_frames), name
    from ..controls.audio import ReferenceAudioError, controls_from_audio

    try:
        return controls_from_audio(np.asarray(wave, np.float32), sr, n_frames).melody, name
    except ReferenceAudioError:  # silent audio: no melody at all
        return np.zeros((n_frames, N_PITCH_CLASSES), np.float32), name
