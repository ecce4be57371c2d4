"""A short clip that ships with the pack, so the first command needs no video of the user's
(`vsr upscale --example OUT.mp4`). How it was made: PROVENANCE.txt and make_example.py."""
from __future__ import annotations

import os

EXAMPLE_CLIP = "example_astronaut_160x90.mp4"


def example_clip() -> str:
    """The path of the shipped example clip (160x90, 24 frames, 24 fps, h264)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), EXAMPLE_CLIP)
