"""The fixed numbers that the parts of filmscore agree on (../shared/DESIGN.md, "Fixed numbers").

A bundle may set its own Mel settings (`MelConfig`); everything else here is the contract between modules.
"""

MODEL_SAMPLE_RATE = 16_000
"""Model audio: 16 kHz mono."""

MEL_HOP = 160
MEL_FRAME_RATE = MODEL_SAMPLE_RATE // MEL_HOP  # 100 Mel frames per second
CONTROL_FRAME_RATE = MEL_FRAME_RATE  # local controls (melody, dynamics) share the Mel frame grid
LATENT_DOWNSAMPLE = 4  # the VAE downsamples time 4x
LATENT_FRAME_RATE = MEL_FRAME_RATE // LATENT_DOWNSAMPLE  # 25 latent frames per second
VIDEO_FPS = 10  # frames per second the film encoder samples (HPM)
N_PITCH_CLASSES = 12
DELIVERY_SAMPLE_RATE = 48_000  # default delivered-WAV rate (the timeline's rate when known)

WINDOW_MEL_FRAMES = 1024  # one model window: 10.24 s
WINDOW_OVERLAP_MEL_FRAMES = 256  # overlap between neighbouring windows of a long cue: 2.56 s

MIN_CUE_S = 1.0
MAX_CUE_S = 600.0  # 10 minutes
