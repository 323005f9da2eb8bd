"""Training of the default bundle's models on the corpus (`filmscore train vae|vocoder|ldm`, `filmscore train
bundle`). Resumable from a checkpoint directory outside the work tree (~/.cache/filmscore/train), or from the
shipped bundle's weights when that directory is gone; logs JSONL."""
