"""Audio I/O, the Mel front-end and Mel inversion (Griffin-Lim)."""
