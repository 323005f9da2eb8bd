"""Golden values of the v1 pipeline on a tiny seeded bundle, as diffusers' pipeline tests hold theirs: a slice of
the output against numbers written here, with a tolerance. Shapes and `max > 0` (test_engine_render.py) let a
change to the sampler, the guidance, the windows' fusion, the decoder, the vocoder or the mastering pass unseen;
these do not.

Two cues through `render_cue` (the path every front end takes), 2 s, 3 DPM-Solver++ steps, backend torch (not
"auto", which may pick ONNX Runtime where it measured faster), on seeded film features and a tiny bundle made with
a fixed seed:
- "picture": picture tokens, and the picture's dynamics as the only control (what `render --video` does);
- "midi": a melody from a MIDI file written here as well (the ControlNet's melody path, control guidance 3).
Each checks a slice of the final latent (OUT.latent.npy), a slice of the delivered samples, their RMS and the
loudness report (the pipeline's own loudness before mastering, and after). One pipeline call with `keep_mel` and
no controls (picture guidance alone) checks a slice of the log-Mel the vocoder hears.

The goldens were made on this tree by `.venv/bin/python tests/test_engine_pipeline_golden.py` (it prints the dicts
below); regenerate them that way only for a change that means to change the audio, and say so in the commit.

Threads: the engine runs every model call on one intra-op thread with fixed call shapes (engine/threads.py, issue
21), so the bytes do not depend on the thread count (test_engine_render.py holds that); the renders here still run
on one worker (torch.set_num_threads(1) around them, `threads=1` for the pipeline call), as a bridge worker does.

Tolerances. On one machine the values repeat exactly. Another CPU (another instruction set: AVX2 against AVX-512
kernels, another reduction order) moves float32 results by ~1e-6 relative per op, grown through 3 steps, the
decoder and the vocoder (an estimate: not measured on a second CPU). So: latents and log-Mel (values of order 1)
to atol 1e-3, rtol 1e-3 (diffusers' bound); samples (~0.02 here, at -23 LUFS) to atol 2e-4; RMS to rtol 1e-3;
loudness to 0.01 dB. What a real change does, measured when the goldens were made (the latent slice's largest
difference): seed 11 -> 12: 1.52; picture guidance 2.0 -> 2.2: 0.018; control guidance 3.0 -> 3.3: 0.083; each
failed both render cases. The melody itself is pinned exactly (its pitch classes), since the tiny ControlNet
moves the latent by only ~3e-3 for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from filmscore.engine.bundle_testing import make_tiny_bundle
from filmscore.engine.film.features import FilmFeatures
from filmscore.engine.render import build_pipeline, render_cue
from filmscore.engine.request import RenderRequest

SEED = 11
STEPS = 3
DURATION_S = 2.0
# The bundle's film head reads these few feature columns (4 semantic, 6 scene affect, 6 aesthetic), not the default
# backbone's: the goldens then hold the pipeline, not whichever backbone the film encoder uses by default.
LAYOUT = "golden-test:4+6+6"
FEATURE_DIM = 16

ATOL_LATENT = 1e-3
RTOL_LATENT = 1e-3
ATOL_SAMPLES = 2e-4
RTOL_RMS = 1e-3
ATOL_LU = 0.01

# .venv/bin/python tests/test_engine_pipeline_golden.py (this tree, x86-64, torch 2.13.0 CPU)
GOLDEN: dict[str, dict] = {
    "picture": {"latent": [[0.215527, -1.147794, -0.967159],
                           [0.400724, -0.001955, 0.8531],
                           [0.270203, -1.076737, -1.24496]],
                "melody": None,
                "samples": [0.0186448, 0.0179538, 0.0045594, -0.0096871, -0.0128158, -0.002498],
                "rms": 0.0560086, "input_lufs": -25.4808, "integrated_lufs": -22.9801,
                "controls": True, "picture": True},
    "midi": {"latent": [[0.21427, -1.148458, -0.964646],
                        [0.400079, -0.002685, 0.851722],
                        [0.271707, -1.075379, -1.241368]],
             "melody": [2, 4, 5, 9],  # D E F A: the MIDI file's pitch classes, a beat each
             "samples": [0.0185362, 0.0178546, 0.0045327, -0.0096281, -0.0127145, -0.002421],
             "rms": 0.0559991, "input_lufs": -25.477, "integrated_lufs": -22.98,
             "controls": True, "picture": True},
}
GOLDEN_MEL: list[list[float]] = [[-5.790264, -5.303674, -2.308355],
                                 [-5.403805, -3.451948, -3.122416],
                                 [-4.755549, -3.605487, -3.012404]]


def film_features(seed: int = 5, duration_s: float = DURATION_S) -> FilmFeatures:
    """Seeded picture features at 10 frames/s and a motion swell, no cut (the theme fitter would start the melody
    at a cut, and a 2 s cue cut at 1.2 s has no room for it: no melody at all)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * 10))
    motion = (0.5 + 0.4 * np.sin(np.linspace(0, np.pi, int(duration_s * 100)))).astype(np.float32)
    return FilmFeatures(semantic=rng.standard_normal((n, 4)).astype(np.float32),
                        emotion=rng.random((n, 6)).astype(np.float32),
                        aesthetic=rng.random((n, 6)).astype(np.float32), motion=motion, cuts_s=(),
                        duration_s=duration_s, layout=LAYOUT)


def write_melody(path: Path) -> Path:
    """D4 E4 F4 A4, a quarter note each at 120 BPM (mido's default tempo, 480 ticks a beat)."""
    import mido

    mid = mido.MidiFile()
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    for note in (62, 64, 65, 69):
        tr.extend([mido.Message("note_on", note=note, velocity=90, time=0),
                   mido.Message("note_off", note=note, velocity=0, time=480)])
    mid.save(path)
    return path


def make_bundle(folder: Path) -> Path:
    return make_tiny_bundle(folder / "tiny", seed=0, feature_dim=FEATURE_DIM, feature_layout=LAYOUT)


def request(case: str, bundle: Path, folder: Path, **kw) -> RenderRequest:
    extra = {"midi": write_melody(folder / "melody.mid")} if case == "midi" else {}
    opts = {"seed": SEED, "steps": STEPS, "backend": "torch", **extra, **kw}
    return RenderRequest(output=folder / f"{case}.wav", bundle=bundle, duration_s=DURATION_S,
                         film_features=film_features(), **opts)


def measure(req: RenderRequest) -> dict:
    """Render `req` and return what the goldens hold, as plain lists and floats."""
    render_cue(req)
    out = Path(req.output)
    audio, sr = sf.read(out, dtype="float64")
    meta = json.loads(out.with_suffix(".json").read_text())
    latent = np.load(out.with_suffix(".latent.npy")).astype(np.float64)
    with np.load(out.with_suffix(".controls.npz")) as c:  # the melody the ControlNet was given: pitch class a beat
        melody = c["melody"].argmax(axis=1)[25::50].tolist() if bool(c["melody_present"]) else None
    mid = audio.shape[0] // 2
    loud = meta["loudness"]
    # the last 3 latent channels over 3 frames in the cue's middle (frames 20..22 of 52), where the melody sounds
    return {"latent": latent[0, -3:, 20:23].round(6).tolist(), "melody": melody,
            "samples": audio[mid:mid + 6].round(7).tolist(),
            "rms": round(float(np.sqrt(np.mean(audio ** 2))), 7),
            "input_lufs": round(loud["input_lufs"], 4), "integrated_lufs": round(loud["integrated_lufs"], 4),
            "controls": meta["pipeline"]["controls"], "picture": meta["pipeline"]["picture"]}


def measure_mel(bundle: Path) -> list[list[float]]:
    """The last 3 Mel bins of the last 3 frames of a cue on picture guidance alone (no controls: the ControlNet
    does not run), from one pipeline call on one worker with `keep_mel`."""
    from filmscore.engine.constants import MODEL_SAMPLE_RATE
    from filmscore.engine.request import cue_n_samples

    pipe, _ = build_pipeline(bundle)
    out = pipe(n_samples=cue_n_samples(DURATION_S, MODEL_SAMPLE_RATE), film=film_features(), seed=SEED,
               steps=STEPS, keep_mel=True, threads=1)
    return out.log_mel[-3:, -3:].astype(np.float64).round(6).tolist()


def check(got: dict, want: dict) -> None:
    assert (got["picture"], got["controls"], got["melody"]) == (want["picture"], want["controls"], want["melody"])
    np.testing.assert_allclose(got["latent"], want["latent"], rtol=RTOL_LATENT, atol=ATOL_LATENT)
    np.testing.assert_allclose(got["samples"], want["samples"], rtol=0, atol=ATOL_SAMPLES)
    np.testing.assert_allclose(got["rms"], want["rms"], rtol=RTOL_RMS)
    assert got["input_lufs"] == pytest.approx(want["input_lufs"], abs=ATOL_LU)
    assert got["integrated_lufs"] == pytest.approx(want["integrated_lufs"], abs=ATOL_LU)


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("case", ["picture", "midi"])
def test_render_matches_golden(bundle, tmp_path, case):
    check(measure(request(case, bundle, tmp_path)), GOLDEN[case])


def test_log_mel_matches_golden(bundle):
    np.testing.assert_allclose(measure_mel(bundle), GOLDEN_MEL, rtol=RTOL_LATENT, atol=ATOL_LATENT)


if __name__ == "__main__":  # prints the goldens for this tree (the command in the module's docstring)
    import tempfile
    from pprint import pformat

    import torch

    torch.set_num_threads(1)  # as the tests run (fixture one_thread)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        b = make_bundle(folder)
        print("GOLDEN =", pformat({case: measure(request(case, b, folder)) for case in ("picture", "midi")},
                                  width=118, sort_dicts=False))
        print("GOLDEN_MEL =", pformat(measure_mel(b), width=118))
