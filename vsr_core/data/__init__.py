"""Data made on the machine: clips from real photographs moved by a virtual camera."""
from .virtual_camera import CameraPath, photo, virtual_camera_clip

__all__ = ["CameraPath", "photo", "virtual_camera_clip"]
