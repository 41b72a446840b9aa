"""Grid stage: px/mm per axis, rotation and colour of the ECG paper grid.

Method (classical CV, no training)
----------------------------------
1. **Paper normalisation.** A large-scale background (paper colour and lighting) is estimated
   on a heavily downscaled copy and divided out, so paper becomes white whatever its tint or
   shading; per channel *darkness* is ``1 - I / background``.
2. **Grid evidence maps.** A *colour* map (spread of darkness across R, G, B: coloured grid
   lines are dark in some channels only, while black ink and paper are neutral) and a *grey*
   map (mean darkness with ink capped, for grey or black-and-white grids). The map whose
   spectrum is more periodic is used.
3. **Coarse rotation and frequencies.** The 2-D power spectrum of the map on a ~1024-px copy
   has sharp peaks at the grid line frequencies; their direction modulo 90 degrees gives the
   rotation (to ~0.1 deg) and their radius the line frequency of each family.
4. **Fine rotation and period (phase method).** For each line family the page is cut into
   tiles along and across the lines; the projection of each tile on the line normal gives a
   complex Fourier coefficient at the line frequency. The phase of that coefficient is the
   sub-pixel position of the line lattice in the tile, so the change of phase along the lines
   gives the residual rotation and the change across the lines the residual frequency. The
   final fit uses the whole page: its precision is that of locating the k-th line hundreds of
   periods away (typically < 0.05 % in px/mm and < 0.01 deg in rotation on scans).
5. **Millimetre assignment.** The projection spectrum at the refined angle decides which
   harmonic is the 1 mm (minor) line and which the 5 mm (major) line: minor lines make the
   5th harmonic of the major frequency stand out. A one-level lattice (only 1 mm or only
   5 mm lines, or dots) is resolved with the DPI prior or, failing that, the page-size prior
   (a printout spans roughly 280 mm), and the confidence is lowered.
6. **Photos (perspective).** When one straight lattice does not explain the page (low tile
   coherence, or the two line families disagree), the paper is masked from the background,
   local wave vectors of both families are measured in tiles (FFT peak near the model's
   prediction) and a projective lattice (homography) is fitted to them by robust least
   squares, growing outwards from the most periodic tile. The page is rectified with it and
   steps 1-5 run on the rectified copy; ``GridResult.homography`` carries the warp, and the
   px/mm and rotation reported are the local values at the grid centre.
7. **Decision.** Found when both families are periodic, coherent and give square cells;
   a lattice with no 1/5 mm structure must be seen with the same period in both directions
   (text lines and character pitch are not a grid).

Rotation is counter-clockwise positive as the image is displayed (y axis pointing down), the
same convention as :func:`cv2.getRotationMatrix2D`. (The renderer's ``geometry["rotation_deg"]``
is measured the other way round: ecglens rotation = -geometry rotation.)
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft

log = logging.getLogger(__name__)

SQUARE_MIN_SNR = 2.0
SQUARE_FREQ_TOL = 0.005
SQUARE_THETA_TOL_DEG = 0.5
"""A one-level lattice (no 1/5 mm structure) is a grid where its periodicity (the weaker
family's snr) exceeds 3, or :data:`SQUARE_MIN_SNR` where both families have the same line
frequency (within :data:`SQUARE_FREQ_TOL`) and angle (within :data:`SQUARE_THETA_TOL_DEG`)."""
GRID_COLOURS = ("red", "pink", "orange", "green", "blue", "grey", "bw", "none")
#: minimum long side (px) of the copy used for the coarse spectral analysis
COARSE_LONG_SIDE = 1024
#: a printout's grid usually spans about this many mm across the image's long side
PAGE_WIDTH_PRIOR_MM = 280.0
#: largest rotation searched (deg); the spectral method folds angles modulo 90 deg
MAX_ROTATION_DEG = 45.0
#: the fine stage works on a copy where the shortest grid period is about this long (px)
WORK_PERIOD_PX = 4.5
#: ... and at most about this many pixels (unless that makes the period < 3.2 px)
MAX_WORK_PIXELS = 1.6e6
#: below this tile-phase coherence of a straight lattice, a projective model is tried
PERSPECTIVE_COHERENCE = 0.6


@dataclass(frozen=True)
class GridResult:
    """What the grid stage found.

    Attributes
    ----------
    found
        True if a periodic ECG grid was detected.
    px_per_mm_x, px_per_mm_y
        Scale along the grid's horizontal (time) and vertical (voltage) lines in px/mm; from
        the grid periodicity, or from ``dpi_prior`` when no grid is found, NaN if neither.
    rotation_deg
        Rotation of the grid lines, counter-clockwise positive as displayed (deg).
    grid_colour
        One of :data:`GRID_COLOURS`.
    source
        ``"grid"``, ``"dpi"`` or ``"none"``: where the px/mm came from.
    confidence
        0-1.
    reason
        Why the grid was not found, or caveats (one line).
    rotation_h_deg, rotation_v_deg
        Rotation measured on the horizontal and vertical line families separately (deg); they
        differ under shear/perspective. NaN when not measured.
    minor_visible
        True if 1 mm lines (or dots) were resolved, False if only 5 mm lines were.
    homography
        For photos with perspective: 3x3 (row tuples) mapping input px to a rectified image
        of ``rectified_size`` (w, h) in which the grid is square and axis-aligned; px/mm and
        rotation above are then the local values at the grid centre. ``None`` for scans.
    rectified_size
        Canvas (width, height) in px for ``homography``.
    rectified_px_per_mm, rectified_rotation_deg
        px/mm (x, y) and residual rotation of the grid in that rectified image (measured on
        a reduced copy).
    """

    found: bool
    px_per_mm_x: float
    px_per_mm_y: float
    rotation_deg: float
    grid_colour: str
    source: str
    confidence: float
    reason: str = ""
    rotation_h_deg: float = float("nan")
    rotation_v_deg: float = float("nan")
    minor_visible: bool = False
    homography: tuple[tuple[float, float, float], ...] | None = None
    rectified_size: tuple[int, int] | None = None
    rectified_px_per_mm: tuple[float, float] | None = None
    rectified_rotation_deg: float = 0.0

    def __bool__(self) -> bool:  # a failed estimate is falsy (skimage FailedEstimation idiom)
        return self.found

    @property
    def px_per_mm(self) -> float:
        """Mean of the two axes' px/mm."""
        return 0.5 * (self.px_per_mm_x + self.px_per_mm_y)

    def to_dict(self) -> dict:
        """JSON-friendly dict (NaN kept as float NaN)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# ----------------------------------------------------------------------------------------
# evidence maps


@dataclass(frozen=True)
class _Maps:
    colour: np.ndarray  # float32 (H, W) grid evidence for coloured grids
    grey: np.ndarray    # float32 (H, W) grid evidence for grey / bw grids
    darkness: np.ndarray  # float32 (H, W) mean darkness after paper normalisation
    achromatic: bool    # the whole image is (nearly) grey-scale


def paper_background(image_rgb: np.ndarray, cell_px: float | None = None) -> np.ndarray:
    """Large-scale paper colour/illumination estimate, same shape as the input (float32).

    Parameters
    ----------
    image_rgb
        ``(H, W, 3)`` uint8 or float image.
    cell_px
        Size of the smoothing cell in px (default: 1/40 of the long side, at least 8 px).
        Grid lines and ink are removed by a max filter (they are darker than paper).
    """
    h, w = image_rgb.shape[:2]
    cell = float(cell_px) if cell_px else max(8.0, max(h, w) / 40.0)
    sw, sh = max(4, round(w / cell)), max(4, round(h / cell))
    # brightest pixels per cell = paper (grid/ink are darker); use dilation of a mid-size copy
    mid_w, mid_h = max(sw * 4, 16), max(sh * 4, 16)
    mid = cv2.resize(image_rgb, (mid_w, mid_h), interpolation=cv2.INTER_AREA)
    mid = cv2.dilate(mid, np.ones((5, 5), np.uint8))
    small_f = cv2.resize(mid, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
    blurred = cv2.GaussianBlur(small_f, (0, 0), 1.0)
    bg = cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.maximum(bg, 1.0)


def normalised_u8(image_rgb: np.ndarray) -> np.ndarray:
    """Image divided by its paper background, ``(H, W, 3)`` uint8 (paper ~255, ink ~0).

    Fast path for full-resolution pages (uint8 arithmetic, saturating at 255).
    """
    h, w = image_rgb.shape[:2]
    cell = max(8.0, max(h, w) / 40.0)
    sw, sh = max(4, round(w / cell)), max(4, round(h / cell))
    # (halving the page first by the fast whole-factor area path saved 20 ms at 300 dpi and
    # moved the background by < 0.5 grey levels, but that flipped faint grid lines over the
    # ink level on an own-renderer page and misread its layout: the one-step average stays)
    mid = cv2.resize(image_rgb, (max(sw * 4, 16), max(sh * 4, 16)), interpolation=cv2.INTER_AREA)
    mid = cv2.dilate(mid, np.ones((5, 5), np.uint8))
    small = cv2.resize(mid, (sw, sh), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    small = np.maximum(small, 1)
    bg = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(image_rgb, bg, scale=255.0)


def lightest_channel(norm_rgb: np.ndarray) -> np.ndarray:
    """Per-pixel lightest of the three channels of a :func:`normalised_u8` image, uint8
    ``(H, W)`` (paper ~255): a coloured grid line stays light in at least one channel, ink is
    dark in all three."""
    return cv2.max(cv2.max(norm_rgb[:, :, 0], norm_rgb[:, :, 1]), norm_rgb[:, :, 2])


def normalised_darkness(image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel darkness ``1 - I / paper`` (float32 planes R, G, B; paper ~ 0, ink ~ 1)."""
    bg = paper_background(image_rgb)
    img = image_rgb.astype(np.float32)
    planes = []
    for c in range(3):
        planes.append(np.maximum(1.0 - img[:, :, c] / bg[:, :, c], 0.0))
    return planes[0], planes[1], planes[2]


def _evidence_maps(image_rgb: np.ndarray) -> _Maps:
    norm = normalised_u8(image_rgb)  # paper ~255
    n_max = lightest_channel(norm)
    n_min = np.minimum(np.minimum(norm[:, :, 0], norm[:, :, 1]), norm[:, :, 2])
    k = np.float32(1.0 / 255.0)
    spread = (n_max - n_min).astype(np.float32) * k  # = dmax - dmin
    dmin = (255 - n_max).astype(np.float32) * k  # darkness of the lightest channel
    # ink (dark in every channel) is not grid: fade the colour evidence where dmin is large
    ink_w = np.clip((dmin - np.float32(0.35)) * np.float32(1.0 / 0.3), 0.0, 1.0)
    colour = spread * (1.0 - ink_w)
    dmean = (255 - cv2.cvtColor(norm, cv2.COLOR_RGB2GRAY)).astype(np.float32) * k
    grey = np.minimum(dmean, np.float32(0.45))
    sub = image_rgb[::4, ::4].astype(np.int16)
    chroma = sub.max(axis=2) - sub.min(axis=2)
    achromatic = float(np.percentile(chroma, 99)) < 12.0
    return _Maps(colour=colour, grey=grey, darkness=dmean, achromatic=achromatic)


def grid_evidence(image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grid evidence map this stage uses for the image (colour spread, or capped grey
    darkness on a grey-scale image) and the mean darkness, both float32 ``(H, W)``."""
    maps = _evidence_maps(image_rgb)
    return (maps.grey if maps.achromatic else maps.colour), maps.darkness


def page_mask(image_rgb: np.ndarray) -> np.ndarray | None:
    """Soft mask (float32, 0-1) of the paper in a photo, or ``None`` when the paper fills the
    image (scans) or cannot be told apart from the background.

    The paper is the largest bright region of a heavily smoothed luminance (Otsu split),
    with holes filled and its border pulled in so the page edge itself is not grid evidence.
    """
    h, w = image_rgb.shape[:2]
    k = max(9, (min(h, w) // 40) | 1)
    lum = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    # paper is bright and fairly neutral; wood, cloth and desks are darker or more saturated
    hsv = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2HSV)
    score = lum.astype(np.float32) - 0.5 * hsv[:, :, 1].astype(np.float32)
    score = cv2.blur(np.clip(score, 0, 255).astype(np.uint8), (k, k))
    _t, bright = cv2.threshold(score, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    hi = score[bright > 0]
    lo = score[bright == 0]
    if hi.size == 0 or lo.size == 0 or float(hi.mean()) - float(lo.mean()) < 35.0:
        return None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
    if n <= 1:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    comp = (labels == biggest).astype(np.uint8)
    # fill holes (dark traces, shadows inside the page)
    flood = comp.copy()
    ff = np.zeros((h + 2, w + 2), np.uint8)
    for y, x in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)):
        if flood[y, x] == 0:
            cv2.floodFill(flood, ff, (x, y), 2)
    comp = np.where(flood == 2, 0, 1).astype(np.uint8)
    frac = float(comp.mean())
    if frac > 0.93 or frac < 0.12:
        return None
    comp = cv2.erode(comp, np.ones((k, k), np.uint8))
    return cv2.blur(comp.astype(np.float32), (k, k))


# ----------------------------------------------------------------------------------------
# coarse spectral analysis


@dataclass(frozen=True)
class _Peak:
    fx: float  # cycles / px (x)
    fy: float  # cycles / px (y)
    power: float
    ratio: float  # peak / local background

    @property
    def freq(self) -> float:
        return math.hypot(self.fx, self.fy)

    @property
    def angle_deg(self) -> float:
        return math.degrees(math.atan2(self.fy, self.fx))


def _spectral_peaks(grid_map: np.ndarray, max_period_px: float, n_peaks: int = 40
                    ) -> tuple[list[_Peak], float]:
    """Strongest isolated peaks of the 2-D power spectrum, and a periodicity score."""
    h, w = grid_map.shape
    m = grid_map - np.float32(grid_map.mean())
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    # float32 FFT: the same peaks (confidences equal to 1e-8 on 240 pages), 3x as fast
    spec = scipy.fft.rfft2(m * win, workers=1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    power = np.fft.fftshift(power, axes=0)  # rows: fy from -0.5 .. 0.5
    fy = (np.arange(h) - h // 2) / h
    fx = np.arange(power.shape[1]) / w
    fr = np.hypot(fx[None, :], fy[:, None])
    band = (fr >= 1.0 / max_period_px) & (fr <= 0.45)
    bgp = cv2.blur(power, (21, 21)) + 1e-12
    local_max = power >= cv2.dilate(power, np.ones((5, 5), np.uint8))
    ratio = power / bgp
    cand = band & local_max & (ratio > 4.0)
    iy, ix = np.nonzero(cand)
    if iy.size == 0:
        return [], 0.0
    order = np.argsort(power[iy, ix])[::-1][:n_peaks]
    peaks = []
    for k in order:
        y, x = int(iy[k]), int(ix[k])
        # sub-bin refinement by parabolic interpolation of log power
        dy = dx = 0.0
        if 0 < y < h - 1:
            a, b, c = np.log(power[y - 1:y + 2, x] + 1e-12)
            den = a - 2 * b + c
            dy = 0.5 * (a - c) / den if den < 0 else 0.0
        if 0 < x < power.shape[1] - 1:
            a, b, c = np.log(power[y, x - 1:x + 2] + 1e-12)
            den = a - 2 * b + c
            dx = 0.5 * (a - c) / den if den < 0 else 0.0
        peaks.append(_Peak(fx=(x + dx) / w, fy=(y - h // 2 + dy) / h,
                           power=float(power[y, x]), ratio=float(ratio[y, x])))
    total = float(power[band].sum()) + 1e-12
    score = float(sum(p.power for p in peaks) / total)
    return peaks, score


def _fold90(angle_deg: float) -> float:
    """Fold an angle to [-45, 45)."""
    return (angle_deg + 45.0) % 90.0 - 45.0


def _split_families(peaks: list[_Peak], tol_deg: float = 1.5
                    ) -> tuple[dict[str, list[_Peak]], dict[str, float]]:
    """Assign spectral peaks to the horizontal (h) and vertical (v) line families.

    Each family's rotation (deg, CCW positive) is the weighted mode of its peaks' directions;
    a peak of lines rotated CCW by theta lies at direction ``90 - theta`` (h) or ``-theta``
    (v). Peaks more than ``tol_deg`` from their family's mode are dropped (harmonic mixing
    terms, text, noise).
    """
    out: dict[str, list[_Peak]] = {"h": [], "v": []}
    theta: dict[str, float] = {}
    for fam in ("h", "v"):
        cand, ang = [], []
        for p in peaks:
            a = _fold180(p.angle_deg)  # -90..90
            th = _fold180(90.0 - a) if fam == "h" else _fold180(-a)
            if abs(th) <= MAX_ROTATION_DEG:
                cand.append(p)
                ang.append(th)
        if not cand:
            continue
        ang_a = np.array(ang)
        wts = np.array([math.sqrt(p.power) for p in cand])
        best, best_w = 0.0, -1.0
        for a in ang_a:
            sel = np.abs(ang_a - a) < 1.0
            if float(wts[sel].sum()) > best_w:
                best, best_w = float(a), float(wts[sel].sum())
        near = np.abs(ang_a - best) < 0.6
        mode = float(np.sum(ang_a[near] * wts[near]) / np.sum(wts[near]))
        theta[fam] = mode
        out[fam] = [p for p, a in zip(cand, ang_a, strict=True) if abs(a - mode) <= tol_deg]
    return out, theta


def _wrap90(d: np.ndarray) -> np.ndarray:
    return (d + 45.0) % 90.0 - 45.0


# ----------------------------------------------------------------------------------------
# fine phase method


def _strip_profiles(grid_map: np.ndarray, theta_deg: float, family: str, n_along: int
                    ) -> tuple[np.ndarray, float, float]:
    """Projections of ``n_along`` strips on the normal of one line family.

    Horizontal lines rotated CCW by theta satisfy ``y + x tan(theta) = const`` and vertical
    lines ``x - y tan(theta) = const``. The map is sheared (bilinear) so that coordinate
    ``u`` becomes an image axis, then summed along the lines separately for strips cut
    along them.

    Returns
    -------
    prof : (n_along, n_u) float64
        Sum of the map per strip and ``u`` bin (1 px).
    u_min : float
        ``u`` of bin 0.
    s_len : float
        Length of the image along the lines (px).
    """
    h, w = grid_map.shape
    t = math.tan(math.radians(theta_deg))
    if family == "h":
        u_min = min(0.0, w * t) - 1.0
        n_u = math.ceil(h + abs(w * t)) + 3
        # dst (x, u_idx) <- src (x, y = u_idx + u_min - x t)
        m = np.array([[1.0, 0.0, 0.0], [-t, 1.0, u_min]])
        sheared = cv2.warpAffine(grid_map, m, (w, n_u), flags=cv2.INTER_LINEAR
                                 | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=0.0)
        edges = np.linspace(0, w, n_along + 1).round().astype(int)
        prof = np.add.reduceat(sheared, edges[:-1], axis=1).T.astype(np.float64)
        s_len = float(w)
    else:
        u_min = min(0.0, -h * t) - 1.0
        n_u = math.ceil(w + abs(h * t)) + 3
        # dst (u_idx, y) <- src (x = u_idx + u_min + y t, y)
        m = np.array([[1.0, t, u_min], [0.0, 1.0, 0.0]])
        sheared = cv2.warpAffine(grid_map, m, (n_u, h), flags=cv2.INTER_LINEAR
                                 | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=0.0)
        edges = np.linspace(0, h, n_along + 1).round().astype(int)
        prof = np.add.reduceat(sheared, edges[:-1], axis=0).astype(np.float64)
        s_len = float(h)
    return prof, float(u_min), s_len


def _band_coefficients(prof: np.ndarray, u_min: float, freqs: tuple[float, ...],
                       n_across: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Complex Fourier coefficients of each strip profile in overlapping Hann bands.

    Returns one ``(n_along, n_across)`` array per frequency and the band centres (``u``).
    """
    n_u = prof.shape[1]
    ub = np.arange(n_u, dtype=np.float64)
    edges = np.linspace(0, n_u, n_across + 1)
    half = edges[1] - edges[0]
    centres = 0.5 * (edges[:-1] + edges[1:])
    x = (ub[None, :] - centres[:, None]) / half
    win = np.where(np.abs(x) < 1.0, 0.5 + 0.5 * np.cos(np.pi * x), 0.0)
    out = []
    for f in freqs:
        carrier = np.exp(-2j * np.pi * f * (ub + u_min))
        out.append(prof @ (win * carrier[None, :]).T)
    return out, centres + u_min


@dataclass(frozen=True)
class _FamilyFit:
    freq: float        # refined line frequency (cycles/px along the sheared axis)
    theta_deg: float   # refined rotation of this family (CCW +)
    coherence: float   # 0-1, how well one straight lattice explains all tiles
    snr: float         # sum |coef| relative to an off-frequency reference
    residual_px: float  # rms misfit of the local lattice positions (px)
    profile: np.ndarray  # whole-page projection at the final angle (for mm assignment)
    coef: np.ndarray   # final tile coefficients (n_along, n_across)
    s_centres: np.ndarray
    u_centres: np.ndarray


def _theta_from_slope(b: float, theta_deg: float, family: str) -> float:
    """Line angle from the slope ``du/ds`` measured in sheared coordinates at ``theta``."""
    t = math.tan(math.radians(theta_deg))
    if family == "h":  # u = y + x t = a + b x  ->  dy/dx = b - t = -tan(theta)
        return -math.degrees(math.atan(b - t))
    return math.degrees(math.atan(b + t))  # u = x - y t = a + b y -> dx/dy = b + t


def _refine_family(grid_map: np.ndarray, theta_deg: float, freq: float, family: str
                   ) -> _FamilyFit:
    """Refine frequency and angle of one line family by the tile phase method.

    Pass 1 uses pulse-pair (neighbouring tile) phase differences, which tolerate a coarse
    start; pass 2 fits a plane to the tile phases over the whole page.
    """
    h, w = grid_map.shape
    u_len = h if family == "h" else w
    th, f = float(theta_deg), float(freq)
    n_across = max(3, min(10, int(u_len * f / 12)))
    # pass 1: 8 strips along the lines, neighbour phase differences
    prof, u_min, s_len = _strip_profiles(grid_map, th, family, 8)
    (coef,), u_c = _band_coefficients(prof, u_min, (f,), n_across)
    ds = s_len / 8
    du = u_c[1] - u_c[0]
    beta = float(np.angle(np.sum(coef[1:, :] * np.conj(coef[:-1, :])))) / ds
    alpha = float(np.angle(np.sum(coef[:, 1:] * np.conj(coef[:, :-1])))) / du
    f = f + alpha / (2 * np.pi)
    th = _theta_from_slope(-beta / (2 * np.pi * f), th, family)
    # pass 2: 12 strips, weighted least-squares plane through the (unwrapped) phases
    n_along = 12
    prof, u_min, s_len = _strip_profiles(grid_map, th, family, n_along)
    (coef, off), u_c = _band_coefficients(prof, u_min, (f, f * 1.0731), n_across)
    s_c = (np.arange(n_along) + 0.5) * s_len / n_along
    mag = np.abs(coef)
    ref = np.angle(np.sum(coef))
    ph = np.angle(coef * np.exp(-1j * ref))
    ss, uu = np.meshgrid(s_c - s_c.mean(), u_c - u_c.mean(), indexing="ij")
    wts = mag.ravel() ** 2 + 1e-30
    a_mat = np.column_stack([uu.ravel(), ss.ravel(), np.ones(uu.size)])
    sw = np.sqrt(wts)
    sol, *_ = np.linalg.lstsq(a_mat * sw[:, None], ph.ravel() * sw, rcond=None)
    res = np.angle(np.exp(1j * (ph.ravel() - a_mat @ sol)))
    residual = float(np.sqrt(np.sum(wts * res ** 2) / np.sum(wts)) / (2 * np.pi * f))
    coherence = float(np.abs(np.sum(mag.ravel() * np.exp(1j * res))) / (mag.sum() + 1e-12))
    f_new = f + float(sol[0]) / (2 * np.pi)
    th = _theta_from_slope(-float(sol[1]) / (2 * np.pi * f_new), th, family)
    snr = float(mag.sum() / (np.abs(off).sum() + 1e-12))
    return _FamilyFit(freq=f_new, theta_deg=th, coherence=coherence, snr=snr,
                      residual_px=residual, profile=prof.sum(axis=0), coef=coef,
                      s_centres=s_c, u_centres=u_c)


# ----------------------------------------------------------------------------------------
# projection spectrum: which harmonic is 1 mm


def _lattice_levels(prof: np.ndarray, f_h: float) -> tuple[int, bool, float]:
    """Decide how the measured line frequency ``f_h`` relates to the 5 mm period.

    Returns
    -------
    m : int
        ``f_h = m * F`` with ``F`` the lattice fundamental (1 for a one-level lattice);
        ``-5`` when ``f_h`` is itself the 5 mm fundamental of a two-level lattice.
    two_level : bool
        True if a 5 mm structure with 1 mm sub-lines was seen.
    strength : float
        Peak-to-noise ratio of ``f_h`` in the profile spectrum.
    """
    nz = np.nonzero(prof)[0]
    x = prof[nz[0]: nz[-1] + 1] if nz.size else prof
    n = x.size
    if n < 16:
        return 1, False, 0.0
    # a 31-sample running mean (shorter on a profile shorter than that: "same" would return
    # the window's length and fail to broadcast)
    width = min(31, n)
    x = x - np.convolve(x, np.ones(width) / width, mode="same")
    x = x * np.hanning(n)
    pad = 8
    amp = np.abs(np.fft.rfft(x, pad * n))
    fgrid = np.arange(amp.size) / (pad * n)
    band = (fgrid > 1.0 / 80.0) & (fgrid < 0.45)
    noise = float(np.median(amp[band])) + 1e-12

    def peak(f: float) -> float:
        if f <= 2.0 / n or f >= 0.49:
            return 0.0
        k = round(f * pad * n)
        return float(amp[max(0, k - 12): k + 13].max()) / noise

    strength = peak(f_h)
    best_m = 1
    for m in (10, 5, 4, 3, 2):
        fund = f_h / m
        if fund * n < 3.0:
            continue
        hs = [peak(fund * k) for k in range(1, m)]
        # harmonics of a line lattice are all of similar height (narrow lines); peaks of
        # traces or text at sub-multiples are far weaker
        # (for m = 5 the sub-harmonics come from the 5 mm lines only and may be weaker)
        rel_min, rel_med = (0.05, 0.08) if m in (5, 10) else (0.15, 0.25)
        floor = max(3.0, rel_min * strength)
        # a 10-fold divisor is real only if f_h is the 2nd harmonic of the 1 mm lines
        # (f_h / 2 is then the 1 mm fundamental, as strong as the lattice's other lines)
        if m == 10 and (hs[4] < 0.3 * strength
                        or np.median(hs[0::2]) < 0.3 * np.median(hs[1::2])):
            continue
        if min(hs) > floor and float(np.median(hs)) > max(4.0, rel_med * strength):
            best_m = m
            break
    two_level = best_m in (5, 10)
    if best_m == 1 and 5 * f_h < 0.45:
        # f_h may be the major line frequency; minor lines would show at 5 f_h
        p5, p4 = peak(5 * f_h), peak(4 * f_h)
        p6 = peak(6 * f_h) if 6 * f_h < 0.49 else 0.0
        if p5 > 4.0 and p5 > 1.3 * max(p4, p6):
            two_level, best_m = True, -5
    return best_m, two_level, strength


# ----------------------------------------------------------------------------------------
# perspective: local wave vectors -> homography


@dataclass(frozen=True)
class _LocalWaves:
    centres: np.ndarray  # (n, 2) tile centres (work px)
    k: dict[str, np.ndarray]  # family -> (n, 2) measured wave vectors (cycles / work px)
    w: dict[str, np.ndarray]  # family -> (n,) weights (peak-to-background ratio)


def _tile_stack(gmap: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = gmap.shape
    ny, nx = h // tile, w // tile
    oy, ox = (h - ny * tile) // 2, (w - nx * tile) // 2
    crop = gmap[oy:oy + ny * tile, ox:ox + nx * tile]
    stack = crop.reshape(ny, tile, nx, tile).transpose(0, 2, 1, 3).reshape(-1, tile, tile)
    yy, xx = np.mgrid[0:ny, 0:nx]
    centres = np.column_stack([ox + (xx.ravel() + 0.5) * tile, oy + (yy.ravel() + 0.5) * tile])
    return stack, centres


def _measure_local_waves(spec_power: np.ndarray, centres: np.ndarray, n_fft: int,
                         predict: dict[str, np.ndarray], window_rel: float) -> _LocalWaves:
    """Strongest spectral peak near the predicted wave vector, per tile and family."""
    ks: dict[str, np.ndarray] = {}
    ws: dict[str, np.ndarray] = {}
    n = spec_power.shape[0]
    mean_power = spec_power.reshape(n, -1).mean(axis=1) + 1e-12
    for fam, pred in predict.items():
        k_out = np.full((n, 2), np.nan)
        w_out = np.zeros(n)
        for i in range(n):
            kx, ky = pred[i]
            if kx < 0:
                kx, ky = -kx, -ky
            bx, by = kx * n_fft, ky * n_fft
            r = max(2.0, window_rel * math.hypot(bx, by))
            x0, x1 = max(0, math.floor(bx - r)), math.ceil(bx + r) + 1
            y0, y1 = math.floor(by - r), math.ceil(by + r) + 1
            x1 = min(x1, spec_power.shape[2])
            if x1 <= x0:
                continue
            rows = np.arange(y0, y1) % n_fft
            patch = spec_power[i][rows][:, x0:x1]
            j = int(np.argmax(patch))
            py, px = divmod(j, patch.shape[1])
            peak = float(patch[py, px])
            dx = dy = 0.0
            if 0 < px < patch.shape[1] - 1:
                a, b, c = np.log(patch[py, px - 1:px + 2] + 1e-12)
                den = a - 2 * b + c
                dx = 0.5 * (a - c) / den if den < 0 else 0.0
            if 0 < py < patch.shape[0] - 1:
                a, b, c = np.log(patch[py - 1:py + 2, px] + 1e-12)
                den = a - 2 * b + c
                dy = 0.5 * (a - c) / den if den < 0 else 0.0
            mx = (x0 + px + dx) / n_fft
            my = (y0 + py + dy) / n_fft
            if mx * pred[i][0] + my * pred[i][1] < 0:
                mx, my = -mx, -my
            k_out[i] = (mx, my)
            w_out[i] = peak / mean_power[i]
        ks[fam], ws[fam] = k_out, w_out
    return _LocalWaves(centres=centres, k=ks, w=ws)


def _lattice_gradients(params: np.ndarray, q: np.ndarray, scale: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Gradients (per work px) of X and Y of the projective lattice model at ``q``."""
    a = params[0:2]
    b = params[2:4]
    c = params[4:6]
    den = 1.0 + q @ c
    xa, yb = q @ a, q @ b
    grad_x = (a[None, :] * den[:, None] - xa[:, None] * c[None, :]) / (den ** 2)[:, None]
    grad_y = (b[None, :] * den[:, None] - yb[:, None] * c[None, :]) / (den ** 2)[:, None]
    return grad_x / scale, grad_y / scale


@dataclass(frozen=True)
class _Projective:
    params: np.ndarray  # a1 a2 b1 b2 c1 c2 (normalised coordinates)
    origin: np.ndarray  # (2,) work px
    scale: float        # work px per normalised unit
    n_tiles: int
    residual_rel: float  # weighted rms relative wave-vector misfit
    region: np.ndarray   # (4,) x0 y0 x1 y1 of the tiles with a grid (work px)

    def to_lattice(self) -> np.ndarray:
        """3x3 matrix: work px -> lattice coordinates (periods)."""
        a1, a2, b1, b2, c1, c2 = self.params
        norm = np.array([[1 / self.scale, 0, -self.origin[0] / self.scale],
                         [0, 1 / self.scale, -self.origin[1] / self.scale], [0, 0, 1.0]])
        return np.array([[a1, a2, 0.0], [b1, b2, 0.0], [c1, c2, 1.0]]) @ norm


def _fit_projective(gmap: np.ndarray, k_h: np.ndarray, k_v: np.ndarray,
                    origin: np.ndarray | None = None,
                    windows: tuple[float, ...] = (0.15, 0.15, 0.12, 0.1, 0.1)
                    ) -> _Projective | None:
    """Fit a projective lattice (homography) to local wave vectors of both line families.

    ``k_h``, ``k_v`` are wave vectors (cycles / px of ``gmap``) measured at ``origin`` (default
    the map centre); they start the fit. Each pass measures every tile's strongest peak within
    ``windows[i]`` (relative) of the model's prediction and refits, so the fitted region grows
    outwards from the origin.
    """
    from scipy.optimize import least_squares

    h, w = gmap.shape
    period = 1.0 / max(float(np.hypot(*k_h)), float(np.hypot(*k_v)))
    tile = int(2 ** round(math.log2(max(32.0, 7.0 * period))))
    while tile > 32 and min(h, w) < 5 * tile:
        tile //= 2
    if min(h, w) < 3 * tile:
        return None
    stack, centres = _tile_stack(gmap, tile)
    stack = stack - stack.mean(axis=(1, 2), keepdims=True)
    win = np.outer(np.hanning(tile), np.hanning(tile)).astype(np.float32)
    n_fft = 2 * tile
    spec = np.fft.rfft2(stack * win, s=(n_fft, n_fft))
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    origin = np.array([w / 2.0, h / 2.0]) if origin is None else np.asarray(origin, float)
    scale = float(max(h, w))
    q = (centres - origin) / scale
    params = np.array([k_v[0] * scale, k_v[1] * scale, k_h[0] * scale, k_h[1] * scale, 0.0, 0.0])
    len(centres)
    waves = None
    res_rel = float("nan")
    for window in windows:
        gx, gy = _lattice_gradients(params, q, scale)
        waves = _measure_local_waves(power, centres, n_fft, {"v": gx, "h": gy},
                                     window_rel=window)
        good = {f: np.isfinite(waves.k[f][:, 0]) & (waves.w[f] > 8.0) for f in ("h", "v")}
        both = good["h"] & good["v"]
        if both.sum() < 8:
            return None
        wh = np.sqrt(np.where(good["h"], np.log(np.maximum(waves.w["h"], 1.0)), 0.0))
        wv = np.sqrt(np.where(good["v"], np.log(np.maximum(waves.w["v"], 1.0)), 0.0))
        kh = np.nan_to_num(waves.k["h"])
        kv = np.nan_to_num(waves.k["v"])

        def resid(p: np.ndarray, kh=kh, kv=kv, wh=wh, wv=wv) -> np.ndarray:
            gx, gy = _lattice_gradients(p, q, scale)
            rx = (gx - kv) * (wv[:, None] * period)
            ry = (gy - kh) * (wh[:, None] * period)
            return np.concatenate([rx.ravel(), ry.ravel()])

        sol = least_squares(resid, params, loss="soft_l1", f_scale=0.02 * math.sqrt(3.0),
                            x_scale="jac", max_nfev=200)
        params = sol.x
        r = resid(params)
        wts = np.concatenate([np.repeat(wv, 2), np.repeat(wh, 2)]) + 1e-12
        res_rel = float(np.sqrt(np.sum(r ** 2) / np.sum(wts ** 2)))
    assert waves is not None
    sel = both
    cs = centres[sel]
    region = np.array([cs[:, 0].min() - tile / 2, cs[:, 1].min() - tile / 2,
                       cs[:, 0].max() + tile / 2, cs[:, 1].max() + tile / 2])
    return _Projective(params=params, origin=origin, scale=scale, n_tiles=int(sel.sum()),
                       residual_rel=res_rel, region=region)


def _apply_h(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    hom = np.column_stack([pts, np.ones(len(pts))]) @ m.T
    return hom[:, :2] / hom[:, 2:3]


def _rectifying_homography(proj: _Projective, sw: float, image_shape: tuple[int, ...],
                           max_area_factor: float = 2.0) -> tuple[np.ndarray, int, int, float]:
    """Full-res input px -> rectified px (square, axis-aligned grid), canvas size, scale.

    The output scale (px per lattice period) equals the input's at the image centre.
    """
    h0, w0 = image_shape[:2]
    to_work = np.array([[sw, 0, 0.5 * sw - 0.5], [0, sw, 0.5 * sw - 0.5], [0, 0, 1.0]])
    lat = proj.to_lattice() @ to_work  # full px -> lattice
    a = proj.params
    f_c = math.sqrt(abs(a[0] * a[3] - a[1] * a[2])) / proj.scale  # cycles / work px at centre
    s_full = 1.0 / f_c / sw  # full px per period
    m = np.diag([s_full, s_full, 1.0]) @ lat
    # canvas: the grid region (work px -> full px), grown by 12 % of the image, inside it
    x0, y0, x1, y1 = proj.region / sw
    gx, gy = 0.12 * w0, 0.12 * h0
    x0, y0 = max(0.0, x0 - gx), max(0.0, y0 - gy)
    x1, y1 = min(w0 - 1.0, x1 + gx), min(h0 - 1.0, y1 + gy)
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    den = np.column_stack([corners, np.ones(4)]) @ m[2]
    if np.any(den <= 0):
        raise ValueError("grid region crosses the horizon of the fitted homography")
    out = _apply_h(m, corners)
    lo = out.min(axis=0)
    span = out.max(axis=0) - lo
    area_factor = span[0] * span[1] / (w0 * h0)
    k = 1.0
    if area_factor > max_area_factor:
        k = math.sqrt(max_area_factor / area_factor)
    m = np.array([[k, 0, -lo[0] * k], [0, k, -lo[1] * k], [0, 0, 1.0]]) @ m
    out_w, out_h = math.ceil(span[0] * k) + 1, math.ceil(span[1] * k) + 1
    return m / m[2, 2], out_w, out_h, s_full * k


# ----------------------------------------------------------------------------------------
# colour naming


def _has_dots(peaks: list[_Peak], f_minor: float, theta_deg: float) -> bool:
    """True if the 1 mm lattice is printed as dots: a dot lattice has a strong diagonal
    spectral peak at sqrt(2) times the 1 mm frequency; a lattice of lines has almost none."""
    if not peaks or not np.isfinite(f_minor) or f_minor * math.sqrt(2) > 0.45:
        return False
    axis = [p.power for p in peaks if abs(p.freq / f_minor - 1) < 0.05]
    diag = [p.power for p in peaks if abs(p.freq / (f_minor * math.sqrt(2)) - 1) < 0.05
            and abs(_wrap90(np.array([p.angle_deg + theta_deg - 45.0]))[0]) < 3.0]
    return bool(axis and diag and max(diag) > 0.2 * max(axis))


def _name_colour(image_rgb: np.ndarray, evidence: np.ndarray, use_colour: bool,
                 dots: bool = False) -> str:
    """Name the grid colour from the pixels with the strongest grid evidence.

    Neutral grids are ``"bw"`` when the 1 mm lattice is dotted, else ``"grey"``.
    """
    if not use_colour:
        return "bw" if dots else "grey"
    thr = float(np.percentile(evidence, 97))
    sel = evidence >= max(thr, 1e-3)
    if sel.sum() < 20:
        return "grey"
    norm = normalised_u8(image_rgb).astype(np.float32) * np.float32(1.0 / 255.0)
    pix = norm[sel]
    rgb = np.median(pix, axis=0)
    pixel = np.clip(rgb * 255, 0, 255).astype(np.uint8).reshape(1, 1, 3)
    hsv = cv2.cvtColor(pixel, cv2.COLOR_RGB2HSV_FULL)[0, 0]
    hue = float(hsv[0]) * 360.0 / 256.0
    sat = float(hsv[1]) / 255.0
    if sat < 0.08:
        return "bw" if dots else "grey"
    if 70 <= hue < 170:
        return "green"
    if 170 <= hue < 270:
        return "blue"
    if 15 <= hue < 70:
        return "orange"
    # reds: pink grids are bluish reds (hue ~340), red grids pure reds (hue ~0)
    if 270 <= hue < 352:
        return "pink"
    return "red"


# ----------------------------------------------------------------------------------------
# main entry


def _decimate(image: np.ndarray, factor: int) -> np.ndarray:
    """Area-average by an integer factor (the image is cropped to a multiple of it)."""
    if factor <= 1:
        return image
    h, w = image.shape[:2]
    hh, ww = (h // factor) * factor, (w // factor) * factor
    if factor % 2:
        # an odd factor: the centre of each block of a box blur, the same values to the bit
        # as the area resize (checked on pages and noise for 3, 5, 7) in ~60 % of its time
        half = factor // 2
        return np.ascontiguousarray(
            cv2.blur(image[:hh, :ww], (factor, factor))[half::factor, half::factor])
    return cv2.resize(image[:hh, :ww], (ww // factor, hh // factor),
                      interpolation=cv2.INTER_AREA)


def _no_grid(reason: str, dpi_prior: float | None, colour: str = "none",
             rotation_deg: float = 0.0, confidence: float = 0.0) -> GridResult:
    if dpi_prior:
        ppm = float(dpi_prior) / 25.4
        return GridResult(False, ppm, ppm, rotation_deg, colour, "dpi", confidence,
                          reason + f"; px/mm from dpi prior {dpi_prior:g}")
    nan = float("nan")
    return GridResult(False, nan, nan, rotation_deg, colour, "none", confidence,
                      reason + "; no dpi prior, px/mm unknown")


def _choose_mm(candidates_ppm: list[float], prior_ppm: float) -> float:
    return min(candidates_ppm, key=lambda c: abs(math.log(c / prior_ppm)))


def find_grid(image_rgb: np.ndarray, dpi_prior: float | None = None,
              perspective: bool = True) -> GridResult:
    """Find the ECG paper grid: px/mm per axis, rotation and colour.

    Parameters
    ----------
    image_rgb
        ``(H, W, 3)`` uint8 RGB page image.
    dpi_prior
        Known raster resolution (dpi), used to resolve the 1 mm / 5 mm ambiguity of a
        one-level grid and as the px/mm fallback when no grid is found.
    perspective
        Try a projective (photo) model when one straight lattice does not explain the grid.

    Returns
    -------
    GridResult
        ``found=False`` with a reason when no periodic grid is present (blank page, plain
        paper, text page, photo of something else).
    """
    if image_rgb.ndim == 2:
        image_rgb = np.repeat(image_rgb[:, :, None], 3, axis=2)
    image_rgb = np.ascontiguousarray(image_rgb[:, :, :3])
    if image_rgb.dtype != np.uint8:
        image_rgb = np.clip(image_rgb, 0, 255).astype(np.uint8)
    h0, w0 = image_rgb.shape[:2]
    if min(h0, w0) < 32:
        return _no_grid("image too small", dpi_prior)

    # ---- coarse: spectral peaks on a ~1024 px copy
    coarse_factor = max(1, max(h0, w0) // COARSE_LONG_SIDE)  # long side 1024-2047 px
    small = _decimate(image_rgb, coarse_factor)
    sc = 1.0 / coarse_factor
    maps_s = _evidence_maps(small)
    mask_s = page_mask(small)
    if mask_s is not None:
        maps_s = _Maps(colour=maps_s.colour * mask_s, grey=maps_s.grey * mask_s,
                       darkness=maps_s.darkness, achromatic=maps_s.achromatic)
    max_period = min(small.shape[:2]) / 6.0
    best = None
    for name, cand_map in (("colour", maps_s.colour), ("grey", maps_s.grey)):
        if name == "colour" and maps_s.achromatic:
            continue
        peaks, score = _spectral_peaks(cand_map, max_period)
        cand_score = score * (1.0 if name == "colour" else 0.8)
        log.debug("coarse %s: %d peaks, periodicity %.3f", name, len(peaks), score)
        if best is None or cand_score > best[2]:
            best = (name, peaks, cand_score)
    assert best is not None
    map_name, peaks, periodicity = best
    if len(peaks) < 2 or periodicity < 0.02:
        return _no_grid(f"no periodic grid (periodicity {periodicity:.3f})", dpi_prior)
    fam_peaks, theta_fam = _split_families(peaks)
    gmap_s = maps_s.colour if map_name == "colour" else maps_s.grey
    if not fam_peaks["h"] or not fam_peaks["v"]:
        if perspective:
            persp = _perspective_grid(image_rgb, small, gmap_s, sc, dpi_prior)
            if persp is not None:
                return persp
        which = "horizontal" if not fam_peaks["h"] else "vertical"
        return _no_grid(f"no {which} grid lines (only one periodic direction)", dpi_prior,
                        rotation_deg=theta_fam.get("h", theta_fam.get("v", 0.0)))
    theta_c = 0.5 * (theta_fam["h"] + theta_fam["v"])

    # ---- fine: phase method on a working copy where the chosen line period is >= ~4 px
    # per family, the peak that locates lines best (amplitude x frequency) among the strong
    f_coarse = {}  # cycles / full-res px
    for k, v in fam_peaks.items():
        top = max(p.power for p in v)
        strong = [p for p in v if p.power >= 0.15 * top]
        best_p = max(strong, key=lambda p: math.sqrt(p.power * min(p.ratio, 50.0)) * p.freq)
        # a 2nd harmonic of the 1 mm lines also scores high: step down to the fundamental
        # when it is there too (the 1/5 mm reading is then unambiguous)
        for _ in range(2):
            half = [p for p in strong if abs(p.freq / (0.5 * best_p.freq) - 1) < 0.03]
            # ... but not from an even harmonic of the 5 mm lines (then 3/4 of it is a peak too)
            three_q = [p for p in v if abs(p.freq / (0.75 * best_p.freq) - 1) < 0.03
                       and p.power >= 0.05 * top]
            # so does the 3rd harmonic near the Nyquist limit (an own render: 6.9 px/mm read
            # as 2.3); a third of the 1 mm frequency falls between the 5 mm lines' harmonics
            # (taken only where it reads as 1 or 5 mm at the dpi prior's scale: text on a
            # page without a grid has such peaks too, as on an own gridless render)
            third = [p for p in strong if abs(p.freq / (best_p.freq / 3.0) - 1) < 0.03
                     and dpi_prior and any(abs(sc / p.freq / (mm * dpi_prior / 25.4) - 1) < 0.15
                                           for mm in (1.0, 5.0))]
            if half and not three_q:
                best_p = max(half, key=lambda p: p.power)
            elif third:
                best_p = max(third, key=lambda p: p.power)
            else:
                break
        f_coarse[k] = best_p.freq * sc
    # the working copy must keep the finest line family (1 mm lines) resolvable
    p_top = max(p.power for v in fam_peaks.values() for p in v)
    f_fine = max((p.freq for v in fam_peaks.values() for p in v
                  if p.power > 0.05 * p_top and p.ratio > 8.0), default=0.0) * sc
    shortest_period = 1.0 / max(f_fine, *f_coarse.values())
    # integer decimation (fast, exact pixel grid): period >= ~4.5 px, at most ~MAX_WORK_PIXELS
    d = max(1, int(shortest_period / WORK_PERIOD_PX))
    while h0 * w0 / d**2 > MAX_WORK_PIXELS and shortest_period / (d + 1) >= 3.2:
        d += 1
    work = _decimate(image_rgb, d)
    sw = 1.0 / d
    maps_w = _evidence_maps(work)
    gmap = maps_w.colour if map_name == "colour" else maps_w.grey
    if mask_s is not None:
        gmap = gmap * cv2.resize(mask_s, (gmap.shape[1], gmap.shape[0]),
                                 interpolation=cv2.INTER_LINEAR)
    cos_c = math.cos(math.radians(theta_c))
    fits = {k: _refine_family(gmap, theta_c, f_coarse[k] / sw * cos_c, k) for k in ("h", "v")}
    # a family whose chosen peak was spurious: retry at the other family's frequency (the
    # grid is square on paper)
    for k, other in (("h", "v"), ("v", "h")):
        if fits[k].snr < 2.0 and fits[other].snr > 3.0:
            retry = _refine_family(gmap, theta_c, fits[other].freq, k)
            if retry.snr > fits[k].snr:
                fits[k] = retry
    if abs(fits["h"].theta_deg - fits["v"].theta_deg) > 0.3:
        # the families of a scanned grid share one angle; a family locked on something else
        # (JPEG 8x8 blocking, lead separators) is retried at the other family's lattice
        for k, other in (("h", "v"), ("v", "h")):
            retry = _refine_family(gmap, fits[other].theta_deg, fits[other].freq, k)
            agrees = abs(retry.theta_deg - fits[other].theta_deg) < 0.3
            if agrees and retry.coherence * retry.snr > 0.5 * fits[k].coherence * fits[k].snr:
                fits[k] = retry
                break
    coh = min(f.coherence for f in fits.values())
    disagree = abs(fits["h"].theta_deg - fits["v"].theta_deg)
    if perspective and (coh < PERSPECTIVE_COHERENCE or disagree > 0.5):
        persp = _perspective_grid(image_rgb, small, gmap_s, sc, dpi_prior)
        if persp is not None:
            return persp

    # ---- mm assignment per axis
    ppm: dict[str, float] = {}
    notes: list[str] = []
    two_levels = []
    lattice_px: dict[str, float] = {}  # lattice fundamental period per family (full-res px)
    for k, fit in fits.items():
        m, two_level, _strength = _lattice_levels(fit.profile, fit.freq)
        # the projection runs along the sheared axis: perpendicular period = u-period * cos
        period_full = math.cos(math.radians(fit.theta_deg)) / fit.freq / sw  # px, full res
        if m == -5:
            ppm_k = period_full / 5.0
        elif two_level:
            ppm_k = period_full * m / 5.0
        else:
            # one-level lattice: the measured period is 1 mm or 5 mm (or m-th of it)
            base = period_full * m
            prior = (dpi_prior / 25.4) if dpi_prior else max(h0, w0) / PAGE_WIDTH_PRIOR_MM
            ppm_k = _choose_mm([base, base / 5.0], prior)
            notes.append(f"{k}: one-level lattice, 1/5 mm resolved by "
                         f"{'dpi' if dpi_prior else 'page-size'} prior")
        if two_level:
            # precision pass: locate the 1 mm lines themselves (5x the 5 mm frequency)
            f_mm = math.cos(math.radians(fit.theta_deg)) / (ppm_k * sw)
            if abs(fit.freq / f_mm - 1) > 0.05 and f_mm < 0.4:
                refit = _refine_family(gmap, fit.theta_deg, f_mm, k)
                if refit.snr > 2.0 and abs(refit.freq / f_mm - 1) < 0.01:
                    ppm_k = math.cos(math.radians(refit.theta_deg)) / refit.freq / sw
                    fits[k] = fit = refit
        two_levels.append(two_level)
        lattice_px[k] = period_full * abs(m)
        ppm[k] = ppm_k
        log.debug("family %s: f=%.6f theta=%.4f coh=%.3f snr=%.2f m=%d two=%s ppm=%.4f",
                  k, fit.freq, fit.theta_deg, fit.coherence, fit.snr, m, two_level, ppm_k)

    snr = min(f.snr for f in fits.values())
    ratio_xy = ppm["h"] / ppm["v"]
    # the vertical line family is periodic along x -> px_per_mm_x
    px_x, px_y = ppm["v"], ppm["h"]
    theta_h, theta_v = fits["h"].theta_deg, fits["v"].theta_deg
    rotation = 0.5 * (theta_h + theta_v) if abs(theta_h - theta_v) < 2.0 else theta_h
    if abs(theta_h - theta_v) > 0.3:
        notes.append(f"line families disagree by {theta_h - theta_v:+.2f} deg (shear/perspective)")
    if not (0.8 < ratio_xy < 1.25):
        # one family locked on another harmonic (1 vs 5 mm, or a 2x/3x/4x multiple): keep the
        # family that agrees better with the scale prior (or shows 1/5 mm structure), and
        # bring the other to the nearest integer multiple of it
        prior = (dpi_prior / 25.4) if dpi_prior else max(h0, w0) / PAGE_WIDTH_PRIOR_MM
        dist = {k: abs(math.log(ppm[k] / prior)) - (0.2 if tl else 0.0)
                for k, tl in zip(("h", "v"), two_levels, strict=True)}
        keep, other = ("h", "v") if dist["h"] <= dist["v"] else ("v", "h")
        f_ratio = fits[keep].freq / fits[other].freq
        if abs(f_ratio - 1) < 0.03:
            # same line frequency in both directions: one reading of the lattice for both
            ppm[other] = ppm[keep] * f_ratio  # px/mm goes as the period, 1/f
            two_levels[("h", "v").index(other)] = two_levels[("h", "v").index(keep)]
            lattice_px[other] = lattice_px[keep]
            notes.append(f"{other}: 1/5 mm reading taken from {keep} (same line frequency)")
        r = ppm[other] / ppm[keep]
        factor = r if r >= 1 else 1.0 / r
        n = min((2.0, 2.5, 3.0, 4.0, 5.0, 10.0), key=lambda c: abs(factor / c - 1))
        if abs(factor - 1) >= 0.05:
            # re-measure the other family at the kept family's lattice (square paper grid)
            retry = _refine_family(gmap, fits[keep].theta_deg, fits[keep].freq, other)
            agrees = retry.snr > 2.0 and abs(retry.freq / fits[keep].freq - 1) < 0.03
            if agrees:
                ppm[other] = ppm[keep] * fits[keep].freq / retry.freq
                fits[other] = retry
            if abs(factor / n - 1) < 0.08:
                if not agrees:
                    ppm[other] = ppm[other] / n if r >= 1 else ppm[other] * n
                two_levels[("h", "v").index(other)] = False
                lattice_px[other] = lattice_px[keep]
                notes.append(f"{other}: harmonic ({n:g}x) reconciled with {keep}")
            elif agrees:
                # no whole multiple, but the lines are there at the kept family's lattice
                # (an own render with a blue grid of dotted 1 mm lines: its horizontal family
                # read at 7/5 of the vertical's scale)
                two_levels[("h", "v").index(other)] = two_levels[("h", "v").index(keep)]
                lattice_px[other] = lattice_px[keep]
                notes.append(f"{other}: re-measured at {keep}'s lattice (x/y was "
                             f"{1.0 / r if other == 'h' else r:.2f})")
            else:
                notes.append(f"px/mm x/y ratio {ppm['v'] / ppm['h']:.2f} far from 1")
        px_x, px_y = ppm["v"], ppm["h"]
    conf = float(np.clip((coh - 0.3) / 0.5, 0, 1) * np.clip((snr - 1.5) / 3.0, 0, 1))
    if not all(two_levels):
        conf *= 0.7
    found = coh > 0.35 and snr > 2.0 and 0.8 < px_x / px_y < 1.25
    if found and not all(two_levels) and not 0.9 < px_x / px_y < 1.11:
        # paper grids are square (a fax's 204 x 196 dpi is 4 % off); a one-level reading in
        # either direction that is not square is text lines and character pitch
        found = False
        notes.append(f"one-level lattice not square (x/y {px_x / px_y:.2f})")
    if found and not all(two_levels) and dpi_prior:
        prior_ratio = 0.5 * (px_x + px_y) / (dpi_prior / 25.4)
        if not 1 / 1.6 < prior_ratio < 1.6:
            # a one-level lattice at a scale no printout is reduced or enlarged to: the pitch
            # of trace rows or text lines, not a grid (the prior is a scan's real dpi; the
            # screen defaults 72/96 are never used as one)
            found = False
            notes.append(f"one-level lattice at {prior_ratio:.2f}x the dpi prior's scale")
    if found and not any(two_levels):
        # no 1/5 mm structure anywhere: accept only a square lattice seen in both directions
        # with clear periodicity (text lines and character pitch are not a grid)
        lat_ratio = lattice_px["h"] / lattice_px["v"]
        # the same line frequency and angle in both directions is a square lattice even
        # where one direction's lines are faint (a folded photo)
        square = (abs(fits["h"].freq / fits["v"].freq - 1) < SQUARE_FREQ_TOL
                  and abs(fits["h"].theta_deg - fits["v"].theta_deg) < SQUARE_THETA_TOL_DEG)
        min_snr = SQUARE_MIN_SNR if square else 3.0
        if not (0.87 < lat_ratio < 1.15 and snr > min_snr and coh > 0.4):
            found = False
            notes.append(f"one-level periodic pattern only (lattice h/v {lat_ratio:.2f})")
    if not found and snr > 3.0 and 0.9 < px_x / px_y < 1.11 and all(two_levels):
        # periodic in both directions with 1/5 mm structure and square cells, but the lines
        # are not straight over the page (curled or folded paper): approximate px/mm
        found = True
        conf = 0.3 * float(np.clip((snr - 3.0) / 5.0, 0.1, 1.0))
        notes.append(f"grid lines not straight over the page (coherence {coh:.2f}): "
                     "px/mm is approximate")
    dots = _has_dots(peaks, 1.0 / (0.5 * (px_x + px_y) * sc), theta_c)
    colour = _name_colour(small, maps_s.colour if map_name == "colour" else maps_s.grey,
                          map_name == "colour", dots)
    if not found:
        extra = ("; " + "; ".join(notes)) if notes else ""
        return _no_grid(f"grid evidence too weak (coherence {coh:.2f}, snr {snr:.1f}, "
                        f"x/y {px_x / px_y:.2f}){extra}; rotation from horizontal "
                        "structure (trace rows, text), approximate", dpi_prior, colour="none",
                        rotation_deg=theta_h, confidence=conf)
    if dpi_prior:
        ratio = 0.5 * (px_x + px_y) / (dpi_prior / 25.4)
        if abs(ratio - 1) > 0.1:
            notes.append(f"grid px/mm is {ratio:.2f}x the dpi prior")
    return GridResult(True, float(px_x), float(px_y), float(rotation), colour, "grid", conf,
                      "; ".join(notes), rotation_h_deg=float(theta_h),
                      rotation_v_deg=float(theta_v), minor_visible=bool(all(two_levels)))


def _fold180(a: float) -> float:
    return (a + 90.0) % 180.0 - 90.0


def _initial_waves(gmap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Wave vectors of both families in the most periodic of five large tiles (centre and
    quadrant centres), to start the projective fit: ``(k_h, k_v, tile centre)``."""
    h, w = gmap.shape
    size = int(min(h, w) * 0.45)
    if size < 64:
        return None
    best = None
    for fx, fy in ((0.5, 0.5), (0.3, 0.3), (0.7, 0.3), (0.3, 0.7), (0.7, 0.7)):
        cx, cy = int(fx * w), int(fy * h)
        x0, y0 = max(0, cx - size // 2), max(0, cy - size // 2)
        tile = gmap[y0:y0 + size, x0:x0 + size]
        peaks, _score = _spectral_peaks(tile, size / 4.0, n_peaks=30)
        fam, _theta = _split_families(peaks, tol_deg=3.0)
        if not fam["h"] or not fam["v"]:
            continue
        # the strongest pair of peaks with about the same frequency (the grid is square on
        # paper; row spacing of traces or text lines is not)
        pairs = [(min(a.power, b.power), a, b) for a in fam["h"] for b in fam["v"]
                 if 0.75 < a.freq / b.freq < 1.33]
        if not pairs:
            continue
        strength, ph, pv = max(pairs, key=lambda t: t[0])
        if best is None or strength > best[0]:
            kh = np.array([ph.fx, ph.fy])
            kv = np.array([pv.fx, pv.fy])
            kh = kh if kh[1] >= 0 else -kh  # h family: pointing down
            kv = kv if kv[0] >= 0 else -kv  # v family: pointing right
            best = (strength, kh, kv, np.array([x0 + tile.shape[1] / 2, y0 + tile.shape[0] / 2]))
    if best is None:
        return None
    return best[1], best[2], best[3]


def _perspective_grid(image_rgb: np.ndarray, small: np.ndarray, gmap_s: np.ndarray, sc: float,
                      dpi_prior: float | None) -> GridResult | None:
    """Grid of a photographed page: fit a homography, measure on the rectified copy.

    ``small`` / ``gmap_s`` are the coarse copy (scale ``sc``) and its masked grid evidence.
    Returns ``None`` when no projective lattice fits (the caller keeps its own result).
    """
    init = _initial_waves(gmap_s)
    if init is None:
        log.debug("perspective: no tile with both line families")
        return None
    k_h, k_v, origin = init
    proj = _fit_projective(gmap_s, k_h, k_v, origin=origin)
    if proj is None:
        log.debug("perspective: no projective lattice")
        return None
    h0, w0 = image_rgb.shape[:2]
    try:
        m_full, out_w, out_h, _s = _rectifying_homography(proj, sc, image_rgb.shape)
    except ValueError as exc:
        log.debug("perspective: %s", exc)
        return None
    # measure on a rectified copy of at most MAX_WORK_PIXELS, warped from a copy of about
    # the same resolution (no aliasing)
    sw = min(1.0, math.sqrt(MAX_WORK_PIXELS / max(1.0, out_w * out_h)))
    sw_in = min(1.0, math.sqrt(MAX_WORK_PIXELS / (h0 * w0)))
    src = image_rgb if sw_in >= 0.95 else cv2.resize(
        image_rgb, (round(w0 * sw_in), round(h0 * sw_in)), interpolation=cv2.INTER_AREA)
    sw_in = src.shape[1] / w0
    to_src = np.array([[sw_in, 0, 0.5 * sw_in - 0.5], [0, sw_in, 0.5 * sw_in - 0.5], [0, 0, 1.0]])
    d = np.diag([sw, sw, 1.0])
    m_work = d @ m_full @ np.linalg.inv(to_src)
    rw, rh = max(8, round(out_w * sw)), max(8, round(out_h * sw))
    rect = cv2.warpPerspective(src, m_work, (rw, rh), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    # 1 mm / 5 mm prior for a one-level lattice: the caller's dpi, else the input image
    # spanning about one page width; both carried to the rectified copy's scale (~ sw)
    prior_ppm = (dpi_prior / 25.4) if dpi_prior else max(h0, w0) / PAGE_WIDTH_PRIOR_MM
    inner = find_grid(rect, prior_ppm * sw * 25.4, perspective=False)
    inner = dataclasses.replace(inner, reason=inner.reason.replace("dpi prior", "scale prior"))
    log.debug("perspective: %d tiles, residual %.3f, rectified grid %s", proj.n_tiles,
              proj.residual_rel, inner)
    if not inner.found:
        return None
    # local scale and rotation at the grid centre of the input image
    x0, y0, x1, y1 = proj.region / sc
    centre = np.array([[0.5 * (x0 + x1), 0.5 * (y0 + y1)]])
    f_map = d @ m_full  # full input px -> rectified work px
    rot = math.radians(inner.rotation_deg)
    # rectified -> mm (undo the small residual rotation, then scale per axis)
    undo = np.array([[math.cos(rot), -math.sin(rot), 0], [math.sin(rot), math.cos(rot), 0],
                     [0, 0, 1.0]])
    to_mm = np.diag([1 / inner.px_per_mm_x, 1 / inner.px_per_mm_y, 1.0]) @ undo @ f_map
    eps = 1.0
    steps = np.array([[0.0, 0.0], [eps, 0.0], [0.0, eps]])
    pts = _apply_h(to_mm, centre + steps)
    grad_x = (pts[1] - pts[0]) / eps  # d(X_mm, Y_mm)/dx
    grad_y = (pts[2] - pts[0]) / eps  # d(X_mm, Y_mm)/dy
    g_xmm = np.array([grad_x[0], grad_y[0]])  # gradient of X_mm in the image
    g_ymm = np.array([grad_x[1], grad_y[1]])
    px_x, px_y = 1.0 / float(np.hypot(*g_xmm)), 1.0 / float(np.hypot(*g_ymm))
    theta_h = math.degrees(math.atan2(g_ymm[0], g_ymm[1]))
    theta_v = math.degrees(math.atan2(-g_xmm[1], g_xmm[0]))
    notes = [f"perspective corrected by homography ({proj.n_tiles} tiles, wave-vector misfit "
             f"{100 * proj.residual_rel:.1f} %); px/mm and rotation are local at the grid "
             "centre"]
    if inner.reason:
        notes.append("rectified: " + inner.reason)
    hn = m_full / m_full[2, 2]
    h_rows = tuple((float(r[0]), float(r[1]), float(r[2])) for r in hn)
    conf = float(inner.confidence * np.clip(1.0 - 5.0 * proj.residual_rel, 0.3, 1.0))
    return GridResult(True, px_x, px_y, 0.5 * (theta_h + theta_v), inner.grid_colour, "grid",
                      conf, "; ".join(notes), rotation_h_deg=theta_h, rotation_v_deg=theta_v,
                      minor_visible=inner.minor_visible, homography=h_rows,
                      rectified_size=(int(out_w), int(out_h)),
                      rectified_px_per_mm=(inner.px_per_mm_x / sw, inner.px_per_mm_y / sw),
                      rectified_rotation_deg=inner.rotation_deg)
