"""Sim-to-real orchestration: render -> appearance (first frame) -> motion (video). Nothing imports this package."""
