"""The paper region of a photo: the desk is no ink, and a split shaded page is no region."""

from __future__ import annotations

import cv2
import numpy as np

from ecglens.digitize.deskew import DeskewResult
from ecglens.digitize.pipeline import PAPER_INK_OUTSIDE, paper_region


def _photo(ink_outside: bool) -> tuple[np.ndarray, np.ndarray]:
    """A 600x900 picture: a brown desk, a white sheet on its middle with four dark trace
    lines; with ``ink_outside`` the lines run on past the sheet (a page whose lower part is
    shaded, not a desk). Returns the picture and the ink darkness of its lines."""
    image = np.zeros((600, 900, 3), np.uint8)
    image[:] = (120, 80, 50)                         # wood, RGB
    cv2.rectangle(image, (150, 100), (750, 500), (245, 245, 240), -1)
    darkness = np.zeros((600, 900), np.float32)
    x0, x1 = (20, 880) if ink_outside else (180, 720)
    for y in (180, 260, 340, 420):
        cv2.line(image, (x0, y), (x1, y), (20, 20, 20), 3)
        cv2.line(darkness, (x0, y), (x1, y), 1.0, 3)
    return image, darkness


def _as_is(image: np.ndarray) -> DeskewResult:
    return DeskewResult(image=image, matrix=np.eye(3), rotation_deg=0.0,
                        perspective_corrected=False, grid=None)  # type: ignore[arg-type]


def test_paper_on_a_desk_is_found_and_holds_the_rows() -> None:
    image, darkness = _photo(ink_outside=False)
    paper = paper_region(image, _as_is(image), darkness)
    assert paper is not None
    columns = np.flatnonzero(paper.any(axis=0))
    assert 140 <= columns[0] <= 200 and 700 <= columns[-1] <= 760   # the sheet, eroded
    assert paper[:, 180:720][[180, 260, 340, 420]].all()             # every row on paper
    assert not paper[:, :100].any() and not paper[:50].any()         # the desk is not


def test_a_region_that_leaves_most_ink_outside_is_no_paper() -> None:
    image, darkness = _photo(ink_outside=True)
    ink = darkness >= 0.5
    outside_share = ink[:, :150].sum() + ink[:, 750:].sum()
    assert outside_share / ink.sum() > 0.2                           # the premise
    # the lines run 860 px, 600 of them on the sheet: 30 % outside -> still the paper
    assert paper_region(image, _as_is(image), darkness) is not None
    # a page whose lit part holds only a third of the ink: no paper region
    darkness[:, 150:750] *= 0.0
    darkness[[180, 260, 340, 420], 150:350] = 1.0
    assert (darkness >= 0.5)[:, 150:750].sum() / (darkness >= 0.5).sum() < 1 - PAPER_INK_OUTSIDE
    assert paper_region(image, _as_is(image), darkness) is None


def test_a_scan_has_no_paper_region() -> None:
    image = np.full((600, 900, 3), 245, np.uint8)
    cv2.line(image, (20, 300), (880, 300), (20, 20, 20), 3)
    darkness = np.zeros((600, 900), np.float32)
    darkness[299:302, 20:880] = 1.0
    assert paper_region(image, _as_is(image), darkness) is None
