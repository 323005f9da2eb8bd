"""MIDI → audio with the FluidSynth command-line synthesiser and a General MIDI SoundFont.

Used to build training corpora from symbolic music and to measure the audio path of the controls (a theme rendered
here and re-extracted must give back its melody). Runs the Debian `fluidsynth` program in a temporary directory:

    fluidsynth -ni -q -F out.wav -T wav -O float -r SR -g GAIN [-R 0] [-C 0] SOUNDFONT in.mid

System packages: `fluidsynth` and `fluid-soundfont-gm` (scripts/setup.sh installs both); corpus v2 renders with
`MuseScore_General.sf3` from `musescore-general-soundfont` (`MUSESCORE_SOUNDFONT`, docs/dataset.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import FilmscoreError

SOUNDFONT_DIRS: tuple[Path, ...] = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"),
                                    Path("/usr/local/share/soundfonts"))
SOUNDFONT_NAMES: tuple[str, ...] = ("FluidR3_GM.sf2", "default-GM.sf2", "default.sf2")
MUSESCORE_SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
"""Debian `musescore-general-soundfont` (MIT, parts PD/CC0): corpus v2's instrument set (docs/dataset.md)."""
SOUNDFONT_ENV = "FILMSCORE_SOUNDFONT"
"""Environment variable naming a SoundFont file; it takes precedence over the standard locations."""
DEFAULT_GAIN = 0.5
"""FluidSynth's master gain: 0.5 keeps dense GM arrangements below full scale (FluidSynth's own default is 0.2)."""


class SynthError(FilmscoreError):
    """FluidSynth or a SoundFont is missing, or FluidSynth failed to render a file."""


def find_soundfont(soundfont: str | Path | None = None) -> Path:
    """The SoundFont to use: `soundfont` if given, else $FILMSCORE_SOUNDFONT, else the first of
    `SOUNDFONT_NAMES` in `SOUNDFONT_DIRS`. Raises `SynthError` naming what was looked for."""
    if soundfont is None:
        soundfont = os.environ.get(SOUNDFONT_ENV) or None
    if soundfont is not None:
        path = Path(soundfont)
        if not path.is_file():
            raise SynthError(f"SoundFont {path}: no such file")
        _check_sf2(path)
        return path
    for d in SOUNDFONT_DIRS:
        for name in SOUNDFONT_NAMES:
            if (d / name).is_file():
                _check_sf2(d / name)
                return d / name
    looked = ", ".join(str(d) for d in SOUNDFONT_DIRS)
    raise SynthError(f"no General MIDI SoundFont ({' or '.join(SOUNDFONT_NAMES)}) in {looked}; install the Debian "
                     f"package fluid-soundfont-gm or set {SOUNDFONT_ENV}=/path/to/font.sf2")


def _check_sf2(path: Path) -> None:
    """FluidSynth renders silence (and exits 0) when the font does not load: check the RIFF/sfbk header first."""
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise SynthError(f"SoundFont {path}: not a SoundFont 2 file (no RIFF 'sfbk' header)")


def find_fluidsynth() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise SynthError("the fluidsynth program is not on PATH; install the Debian package fluidsynth")
    return exe


def render_midi(midi, sample_rate: int = 16_000, soundfont: str | Path | None = None, gain: float = DEFAULT_GAIN,
                *, reverb: bool = True, chorus: bool = True, timeout_s: float | None = None,
                stereo: bool = False, settings: dict[str, str | int | float] | None = None) -> np.ndarray:
    """Render a MIDI file (path, bytes or `mido.MidiFile`) to `(n,)` float32 mono audio at `sample_rate`
    (`stereo=True`: `(n, 2)`, FluidSynth's left and right as rendered, pan and stereo samples kept).

    Sample 0 is MIDI time 0; the render runs until FluidSynth's player stops (the end of the file plus the
    voices' release). `reverb`/`chorus` False turn FluidSynth's effects off (dry, for measurements).
    `settings`: extra FluidSynth settings (`-o name=value`), e.g. {"synth.dynamic-sample-loading": 1}, which
    loads only the samples of the presets the file uses (a compressed .sf3 font: 5.5 s -> 1.4 s per render).
    `timeout_s` None: 60 s plus 2 s per second of music.
    """
    import mido
    import soundfile as sf

    from ..controls.midi import midi_duration_s, read_midi

    if not 8000 <= sample_rate <= 96000:
        raise SynthError(f"sample rate {sample_rate} Hz is outside FluidSynth's 8000..96000 Hz")
    if not 0.0 < gain <= 10.0:
        raise SynthError(f"gain {gain} is outside FluidSynth's (0, 10]")
    exe = find_fluidsynth()
    font = find_soundfont(soundfont)
    mid = read_midi(midi) if not isinstance(midi, mido.MidiFile) else midi
    with tempfile.TemporaryDirectory(prefix="filmscore-fluidsynth-") as tmp:
        src, out = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        if isinstance(midi, (str, Path)):
            shutil.copyfile(midi, src)  # keep the user's bytes: mido re-saving could normalise them
        else:
            mid.save(str(src))
        cmd = [exe, "-ni", "-q", "-F", str(out), "-T", "wav", "-O", "float", "-r", str(int(sample_rate)),
               "-g", f"{gain:g}"]
        if not reverb:
            cmd += ["-R", "0"]
        if not chorus:
            cmd += ["-C", "0"]
        for name, value in (settings or {}).items():
            cmd += ["-o", f"{name}={value}"]
        cmd += [str(font), str(src)]
        if timeout_s is None:
            timeout_s = 60.0 + 2.0 * midi_duration_s(mid)
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as e:
            raise SynthError(f"fluidsynth did not finish within {timeout_s:.0f} s") from e
        err = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        if any("not a SoundFont" in line for line in err):  # exit status 0 and a silent file in that case
            raise SynthError(f"fluidsynth could not load SoundFont {font}: {err[-1]}")
        if proc.returncode != 0 or not out.is_file():
            raise SynthError(f"fluidsynth failed (exit {proc.returncode}): {err[-1] if err else 'no output file'}")
        try:
            data, sr = sf.read(str(out), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as e:
            raise SynthError(f"fluidsynth wrote an unreadable file ({e})") from e
    if sr != sample_rate:
        raise SynthError(f"fluidsynth wrote {sr} Hz instead of the {sample_rate} Hz asked for")
    if stereo:
        return np.ascontiguousarray(data[:, :2] if data.shape[1] >= 2 else np.repeat(data, 2, axis=1),
                                    dtype=np.float32)
    return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
