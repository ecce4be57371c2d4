"""Remake the shipped example clip: `python -m vsr_core.samples.make_example` (needs scikit-image, a test
extra; the clip itself is shipped, so users never run this)."""
from __future__ import annotations

import os

import cv2

from ..data.virtual_camera import CameraPath, photo, virtual_camera_clip
from ..video import VideoWriter
from . import example_clip

FRAMES, SIZE, FPS = 24, (90, 160), 24


def make(path: str) -> None:
    # The photo at 60% first, so a 160x90 view holds the astronaut's head and shoulders, as a small video would.
    image = cv2.resize(photo("astronaut"), (307, 307), interpolation=cv2.INTER_AREA)
    clip = virtual_camera_clip(image, FRAMES, SIZE, CameraPath(pan=(1.0, 0.4), zoom=1.006, roll=0.05),
                               start=(135.0, 88.0))
    with VideoWriter(path, FPS, fmt="h264", crf=16, overwrite=True) as writer:
        writer.write(clip)


if __name__ == "__main__":
    make(example_clip())
    print(f"wrote {example_clip()} ({os.path.getsize(example_clip())} bytes)")
