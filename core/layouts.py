"""Page layouts of 12-lead printouts, as data (shared by the renderer and the digitizer).

A layout is a set of rows; each row holds one or more cells; a cell prints one lead over a
fraction of the page's time axis. The page's printed duration is the printable width divided
by the paper speed (250 mm at 25 mm/s → 10 s; at 50 mm/s → 5 s), so cells are stored as
fractions ``[t0, t1)`` of that duration, not in seconds. A lead written ``-aVR`` is printed
inverted (Cabrera display); its signal is stored back as ``aVR``.
"""

from __future__ import annotations

import dataclasses

from ecglens.core.errors import EcglensError


class LayoutError(EcglensError, ValueError):
    """An unknown layout name or an inconsistent layout."""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One lead printed in one row over ``[t0, t1)`` (fractions of the page duration)."""

    lead: str
    row: int
    t0: float
    t1: float

    @property
    def stored_lead(self) -> str:
        """The lead this cell's signal is stored as (``-aVR`` → ``aVR``)."""
        return self.lead.lstrip("-")

    @property
    def inverted(self) -> bool:
        """True if the printed trace is the negative of the stored lead."""
        return self.lead.startswith("-")


@dataclasses.dataclass(frozen=True)
class Layout:
    """A named page layout; see the module docstring."""

    name: str
    n_rows: int
    cells: tuple[Cell, ...]
    description: str

    @property
    def rhythm_rows(self) -> tuple[int, ...]:
        """Rows that print one lead over the whole duration below a multi-column grid."""
        counts = {r: sum(1 for c in self.cells if c.row == r) for r in range(self.n_rows)}
        multi = any(n > 1 for n in counts.values())
        return tuple(r for r, n in counts.items() if n == 1 and multi)

    @property
    def n_columns(self) -> int:
        """Largest number of cells in one row."""
        return max(sum(1 for c in self.cells if c.row == r) for r in range(self.n_rows))

    def row_cells(self, row: int) -> tuple[Cell, ...]:
        """The cells of one row, left to right."""
        return tuple(sorted((c for c in self.cells if c.row == row), key=lambda c: c.t0))


def _grid(name: str, rows: list[list[str]], description: str,
          rhythm: tuple[str, ...] = ()) -> Layout:
    cells = []
    for r, leads in enumerate(rows):
        n = len(leads)
        for k, lead in enumerate(leads):
            cells.append(Cell(lead, r, k / n, (k + 1) / n))
    for j, lead in enumerate(rhythm):
        cells.append(Cell(lead, len(rows) + j, 0.0, 1.0))
    return Layout(name, len(rows) + len(rhythm), tuple(cells), description)


_ROWS_3X4 = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]]
_CABRERA = ["aVL", "I", "-aVR", "II", "aVF", "III", "V1", "V2", "V3", "V4", "V5", "V6"]
_STANDARD = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        _grid("3x4", _ROWS_3X4, "3 rows x 4 columns, 2.5 s per lead at 25 mm/s"),
        _grid("3x4+1", _ROWS_3X4, "3x4 plus a lead II rhythm strip", rhythm=("II",)),
        _grid("3x4+3", _ROWS_3X4, "3x4 plus V1, II, V5 rhythm strips", rhythm=("V1", "II", "V5")),
        _grid("6x2", [["I", "V1"], ["II", "V2"], ["III", "V3"], ["aVR", "V4"], ["aVL", "V5"],
                      ["aVF", "V6"]], "6 rows x 2 columns, limb leads then chest leads"),
        _grid("12x1", [[lead] for lead in _STANDARD], "12 rows, every lead over the whole page"),
        _grid("12x1-cabrera", [[lead] for lead in _CABRERA],
              "12 rows in Cabrera order (aVL, I, -aVR, II, aVF, III, V1-V6)"),
    )
}

LAYOUT_NAMES: tuple[str, ...] = tuple(LAYOUTS)


def get_layout(name: str) -> Layout:
    """The layout called ``name`` (``cabrera`` is an alias of ``12x1-cabrera``)."""
    key = {"cabrera": "12x1-cabrera"}.get(name.lower(), name.lower())
    if key not in LAYOUTS:
        raise LayoutError(f"unknown layout {name!r}; valid layouts: {', '.join(LAYOUT_NAMES)}")
    return LAYOUTS[key]
