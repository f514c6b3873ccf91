"""Appearance stage: FLUX.1-dev + two ControlNet branches (model, pipeline, generator, training, inference)."""
