"""Page layouts of 12-lead printouts, as data (shared by the renderer and the digitizer).

A layout is a set of rows; each row holds one or more cells; a cell prints one lead over a
fraction of the page's time axis. The page's printed duration is the printable width divided
by the paper speed (250 mm at 25 mm/s → 10 s; at 50 mm/s → 5 s), so cells are stored as
fractions ``[t0, t1)`` of that duration, not in seconds. A cell prints the time under it unless
it says otherwise (``source_t0``: ECG-Image-Kit's 6x2 pages print the same first 5 s in both
columns). A lead written ``-aVR`` is printed inverted (Cabrera display); its signal is stored
back as ``aVR``. Rhythm-strip rows (one lead over the whole duration, below the grid of cells)
are listed by their layout; the lead a strip prints is the template's default, which the
digitizer replaces by the lead name printed at the strip's start where it reads one.
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
    source_t0: float | None = None
    """Where the printed samples start in the record (fraction of the page duration); None:
    at ``t0`` (the cell prints the time under it)."""

    @property
    def record_span(self) -> tuple[float, float]:
        """``[start, end)`` of the printed samples in the record (fractions of the duration)."""
        start = self.t0 if self.source_t0 is None else self.source_t0
        return start, start + (self.t1 - self.t0)

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
    rhythm_rows: tuple[int, ...] = ()
    """Rows that print one lead over the whole duration below the other rows (rhythm
    strips); their lead is the template's default (see :meth:`with_rhythm_leads`)."""

    def with_rhythm_leads(self, leads: dict[int, str]) -> Layout:
        """This layout with rhythm row ``r`` printing ``leads[r]`` (same name; rows not in
        ``leads`` keep the template's lead)."""
        unknown = set(leads) - set(self.rhythm_rows)
        if unknown:
            raise LayoutError(f"{self.name}: rows {sorted(unknown)} are no rhythm strips")
        cells = tuple(dataclasses.replace(c, lead=leads[c.row]) if c.row in leads else c
                      for c in self.cells)
        return dataclasses.replace(self, cells=cells)

    @property
    def n_columns(self) -> int:
        """Largest number of cells in one row."""
        return max(sum(1 for c in self.cells if c.row == r) for r in range(self.n_rows))

    def row_cells(self, row: int) -> tuple[Cell, ...]:
        """The cells of one row, left to right."""
        return tuple(sorted((c for c in self.cells if c.row == row), key=lambda c: c.t0))


def _grid(name: str, rows: list[list[str]], description: str,
          rhythm: tuple[str, ...] = (), same_window: bool = False) -> Layout:
    """Rows of equal cells, then full-width ``rhythm`` strips; ``same_window``: every column
    prints the record's first ``1/n`` of the duration (ECG-Image-Kit's 6x2)."""
    cells = []
    for r, leads in enumerate(rows):
        n = len(leads)
        for k, lead in enumerate(leads):
            cells.append(Cell(lead, r, k / n, (k + 1) / n, 0.0 if same_window else None))
    for j, lead in enumerate(rhythm):
        cells.append(Cell(lead, len(rows) + j, 0.0, 1.0))
    strips = tuple(range(len(rows), len(rows) + len(rhythm)))
    return Layout(name, len(rows) + len(rhythm), tuple(cells), description, strips)


_ROWS_3X4 = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]]
_CABRERA = ["aVL", "I", "-aVR", "II", "aVF", "III", "V1", "V2", "V3", "V4", "V5", "V6"]
_STANDARD = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
_EIK_6X2 = [["V1", "V4"], ["I", "aVR"], ["V2", "V5"], ["II", "aVL"], ["V3", "V6"], ["III", "aVF"]]
_EIK_12X1 = ["V4", "V1", "aVR", "I", "V5", "V2", "aVL", "II", "V6", "V3", "aVF", "III"]
"""ECG-Image-Kit v1.0.0's row orders, top to bottom (the generator's JSON of its 6x2+1 and
12x1+1 pages: ``ecg_image_kit/synthetic/README.md``, "Layouts as drawn")."""

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
        _grid("6x2+1", _EIK_6X2, "ECG-Image-Kit's 6 rows x 2 columns (V1|V4, I|aVR, V2|V5, "
              "II|aVL, V3|V6, III|aVF), both columns the first half, plus a rhythm strip",
              rhythm=("II",), same_window=True),
        _grid("12x1+1", [[lead] for lead in _EIK_12X1], "ECG-Image-Kit's 12 rows (V4, V1, aVR, "
              "I, V5, V2, aVL, II, V6, V3, aVF, III), each over the whole page, plus a rhythm "
              "strip", rhythm=("II",)),
    )
}

LAYOUT_NAMES: tuple[str, ...] = tuple(LAYOUTS)


def get_layout(name: str) -> Layout:
    """The layout called ``name`` (``cabrera`` is an alias of ``12x1-cabrera``)."""
    key = {"cabrera": "12x1-cabrera"}.get(name.lower(), name.lower())
    if key not in LAYOUTS:
        raise LayoutError(f"unknown layout {name!r}; valid layouts: {', '.join(LAYOUT_NAMES)}")
    return LAYOUTS[key]
