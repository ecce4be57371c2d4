"""The numbers in a frame folder's file names: gaps and duplicates are found, not silently re-timed.

A folder 1,2,3,5,6 read in name order plays frame 5 where 4 belonged and ends
early; frame_1.png beside frame_001.png plays every frame twice. Both are
reported; with accept_numbering a frame keeps the time its number gives (a gap
holds the previous frame longer) and, of files sharing a number, the first in
name order is used.
"""
from __future__ import annotations

import os
import re
from fractions import Fraction

from ..errors import InputError

_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")
LISTED = 8          # numbers named in a message before "and N more"


def frame_number(name: str) -> int | None:
    """The last run of digits in a file name without its extension ('shot2_0017.png' -> 17)."""
    match = _LAST_NUMBER.search(os.path.splitext(name)[0])
    return int(match.group(1)) if match else None


def number_ranges(numbers: list[int]) -> str:
    """[4, 9, 10, 11] -> '4, 9-11' (at most LISTED spans, then 'and N more')."""
    spans, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            spans.append(str(start) if start == n else f"{start}-{n}")
            start = None
    more = len(spans) - LISTED
    return ", ".join(spans[:LISTED]) + (f" and {more} more" if more > 0 else "")


def check_numbering(folder: str, names: list[str], fps: Fraction, accept: bool
                    ) -> tuple[list[str], list[Fraction], list[str]]:
    """(names to read, each one's time in seconds, notes for the user) for a folder's image names.

    Without numbers in every name, the name order at `fps` is all there is.
    Gaps or duplicate numbers raise InputError unless `accept`.
    """
    numbers = [frame_number(n) for n in names]
    if any(n is None for n in numbers):
        return names, [Fraction(i) / fps for i in range(len(names))], []
    by_number: dict[int, list[str]] = {}
    for name, n in zip(names, numbers):
        by_number.setdefault(n, []).append(name)
    ordered = sorted(by_number)
    missing = sorted(set(range(ordered[0], ordered[-1] + 1)) - set(ordered))
    doubled = [n for n in ordered if len(by_number[n]) > 1]
    problems, accepted = [], []
    if missing:
        problems.append(f"numbers {number_ranges(missing)} are missing (frames {ordered[0]} to {ordered[-1]})")
        accepted.append("each frame keeps the time its number gives")
    if doubled:
        example = by_number[doubled[0]]
        problems.append(f"numbers {number_ranges(doubled)} are used by more than one file (e.g. "
                        f"{', '.join(example[:3])})")
        accepted.append("the first file of each number in name order is used, the others skipped")
    if problems and not accept:
        raise InputError(f"frame folder '{folder}': {'; '.join(problems)}; expected one file per number with "
                         f"no gaps (rename the files, or accept them with accept_numbering / --accept-numbering: "
                         f"each frame keeps the time its number gives, the first file of a number is used)")
    notes = [f"WARNING: frame folder '{folder}': {'; '.join(problems)}; accepted: {'; '.join(accepted)}"] \
        if problems else []
    kept = [by_number[n][0] for n in ordered]
    return kept, [Fraction(n - ordered[0]) / fps for n in ordered], notes
