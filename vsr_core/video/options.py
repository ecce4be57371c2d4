"""What a user can ask of a video when loading it, and what a source tells us."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..errors import InputError
from ..settings import check_settings, setting


def to_fraction(value, name: str = "fps") -> Fraction:
    """An exact frame rate from an int, a float, a Fraction or a string like '30000/1001'.

    Floats are snapped to the nearest fraction with a denominator up to 1e6, so
    29.97002997 (30000/1001 sent through a FLOAT socket) comes back exact.
    """
    try:
        if isinstance(value, Fraction):
            frac = value
        elif isinstance(value, float):
            frac = Fraction(value).limit_denominator(1_000_000)
        else:
            frac = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError, TypeError, OverflowError):
        raise InputError(f"{name}={value!r} is not a number; expected e.g. 24, 29.97 or 30000/1001") from None
    if not frac > 0 or frac > 1000:
        raise InputError(f"{name}={value!r} is out of range; expected a frame rate above 0 and at most 1000")
    return frac


@dataclass(frozen=True)
class LoadOptions:
    """Frame selection, applied in this order: force_rate, skip, every-nth, cap.

    Same meaning as in VideoHelperSuite's Load Video, so artists' habits carry over.
    """

    frame_load_cap: int = setting(0, "load at most this many frames (0: all)", min=0, max=1_000_000)
    skip_first_frames: int = setting(0, "drop this many frames from the start (after force_rate)", min=0,
                                     max=10_000_000)
    select_every_nth: int = setting(1, "keep one frame in every N (the frame rate is divided by N, so playback "
                                       "speed is unchanged)", min=1, max=1000)
    force_rate: Fraction | None = setting(None, "re-time to this fps first (e.g. 24 or 30000/1001)")
    folder_fps: Fraction = setting(Fraction(24), "frame rate of an input image folder")
    allow_damaged: bool = setting(False, "read what a damaged or cut-short file still holds (with a warning) "
                                         "instead of failing")
    accept_numbering: bool = setting(False, "read a frame folder whose numbers have gaps or duplicates (with a "
                                            "warning): each frame keeps the time its number gives, the first "
                                            "file of a number is used")

    def __post_init__(self):
        check_settings(self)
        if self.force_rate is not None:
            object.__setattr__(self, "force_rate", to_fraction(self.force_rate, "force_rate"))
        object.__setattr__(self, "folder_fps", to_fraction(self.folder_fps, "folder_fps"))


@dataclass(frozen=True)
class VideoInfo:
    """What a source says about itself before any frame is decoded."""

    path: str
    width: int
    height: int
    fps: Fraction                 # the source's own rate
    frame_count_hint: int | None  # from metadata; the exact count is known after decoding
    has_audio: bool
    kind: str                     # 'container', 'animated-image' or 'image-folder'
    variable_rate: bool = False   # frame durations differ: each frame's own time is kept on output
    damage: str | None = None     # what is wrong with a damaged file (read only with allow_damaged)


@dataclass(frozen=True)
class Colour:
    """How a video's RGB was turned into YUV: matrix, range, and the primaries/transfer tags.

    Values are FFmpeg's enums (AVColorSpace, AVColorRange, AVColorPrimaries,
    AVColorTransferCharacteristic): 1 = BT.709, 5/6 = BT.601, 9 = BT.2020
    matrix; range 1 = limited (tv), 2 = full (pc).
    """

    matrix: int = 1
    range: int = 1
    primaries: int = 1
    transfer: int = 1

    @staticmethod
    def default_for(height: int) -> "Colour":
        """What an untagged video of this height is taken to be (players assume BT.709 for HD)."""
        return Colour() if height >= 720 else Colour(matrix=6, range=1, primaries=6, transfer=6)

    @property
    def swscale_matrix(self) -> str:
        return {1: "ITU709", 9: "BT2020", 10: "BT2020", 7: "SMPTE240M", 4: "FCC"}.get(self.matrix, "ITU601")

    @property
    def swscale_range(self) -> str:
        return "JPEG" if self.range == 2 else "MPEG"
