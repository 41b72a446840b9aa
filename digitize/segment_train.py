"""Train the trace-segmentation U-Net (``digitize/segment.py``) on synthetic pages, on CPU.

Command (seeded, resumable; the data cache and checkpoints stay outside git)::

    python -m ecglens.digitize.segment_train --out benchmarks/out/segment --steps 6000 --seed 0
    python -m ecglens.digitize.segment_train --out benchmarks/out/segment --export
    python -m ecglens.digitize.segment_train --out benchmarks/out/segment --evaluate

(the committed weights: 6000 steps, seed 0, one thread, ~50 min; see the model card).

Data (made once into ``<out>/data``, every page at :data:`MODEL_PX_PER_MM`):

* own pages: ``synth.render.render_page(..., trace_mask=True)`` over layouts, grid colours,
  gains, speeds, pen widths, fonts, 100-220 dpi, then a distortion profile (clean, scan, fax,
  photo, photo_hard); the target is the trace-only pen layer, warped with the page. LUDB
  records :data:`TRAIN_RECORDS` train, :data:`VAL_RECORDS` validate (other seeds too).
* ECG-Image-Kit pages (``ecg_image_kit/synthetic``): the printed polyline of every lead from
  its ``eikdev`` sample-to-pixel model. ``strat_fold`` 1-8 train, fold 9 validates; never
  fold 9 in training. The calibration pulse and the column separator bars (printed but not in
  the geometry) are left out of the loss and the scores (ignore boxes).

Target: pixels whose trace coverage is at least :data:`TARGET_LEVEL` (text, grid, paper = 0).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

MODEL_PX_PER_MM = 5.0
"""Scale the network sees: 5 px/mm (127 dpi) keeps a 0.2-mm pen line at 1 px and a 1-mm grid
square at 5 px, while a 300-dpi A4 page shrinks to 1.6 Mpx (one-core inference < 1 s)."""
CHANNELS = (16, 32, 48, 64)
"""U-Net widths per level (1/2, 1/4, 1/8, 1/16 of the model resolution): ~110 k parameters,
~4 k multiply-adds per input pixel."""
TARGET_LEVEL = 0.3
"""Trace coverage (0-1, after resampling to the model scale) from which a pixel is trace."""
EIK_PEN_MM = 0.26
"""Pen width used to draw the ECG-Image-Kit target (about its printed line, checked by eye
on overlays)."""
EIK_PX_PER_MM = 100.0 / 25.4
"""ECG-Image-Kit stored pages are 100 px per inch of paper."""
TRAIN_RECORDS = range(1, 161)
"""LUDB records drawn for training pages."""
VAL_RECORDS = range(181, 201)
"""LUDB records for held-out own pages (never in training)."""
N_OWN_TRAIN = 100
"""Own training pages (a photo page takes ~3 s to make on one core)."""
N_OWN_VAL = 15
N_TEST_PER_PROFILE = 6
"""Held-out own pages per profile for the final scores (not used while training)."""
OWN_DPI = (100.0, 220.0)
"""Render resolution of own pages: pages are shrunk to 127 dpi anyway, so higher dpi would
only cost time (the resampling itself is covered by the range)."""
PROFILE_MIX = (("clean", 0.2), ("scan", 0.3), ("photo", 0.3), ("photo_hard", 0.12),
               ("fax", 0.08))
"""Distortion profiles of the own training pages (photo-like pages dominate real use)."""
CROP_PX = 160
"""Training crop side (32 mm at 5 px/mm: a QRS complex and several grid squares)."""
SCALE_JITTER = 0.3
"""Crops are rescaled by exp(U(-0.3, 0.3)) (0.74-1.35): a page's px/mm is often only
estimated (photos: it also varies across the page)."""
BATCH = 12
LR = 3e-3
VAL_EVERY = 250
CKPT_EVERY = 100
EIK_DIR_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg_image_kit" \
    / "synthetic"
LUDB_DIR_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ludb" / "data"


# ============================================================================ model
def build_model(channels: Sequence[int] = CHANNELS) -> Any:
    """A small U-Net for RGB in [0, 1] ``(N, 3, H, W)`` (H, W multiples of 32) → trace logits.

    The input is folded 2x2 into channels (space-to-depth) so that no convolution runs at the
    full model resolution (one-core speed), yet every input pixel reaches the first layer; the
    output is unfolded the same way. Skips are added (FPN-style), not concatenated."""
    import torch
    from torch import nn

    def conv(c_in: int, c_out: int, k: int = 3) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
                             nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = list(channels)
            self.down = nn.PixelUnshuffle(2)
            self.enc = nn.ModuleList(
                [nn.Sequential(conv(12, c[0]), conv(c[0], c[0]))]
                + [nn.Sequential(conv(c[i - 1], c[i]), conv(c[i], c[i]))
                   for i in range(1, len(c))])
            self.lateral = nn.ModuleList([conv(c[i + 1], c[i], 1) for i in range(len(c) - 1)])
            self.dec = nn.ModuleList([conv(c[i], c[i]) for i in range(len(c) - 1)])
            self.head = nn.Conv2d(c[0], 4, 1)
            self.up = nn.PixelShuffle(2)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.down(x - 0.5)
            skips = []
            for i, enc in enumerate(self.enc):
                x = enc(x if i == 0 else self.pool(x))
                skips.append(x)
            for i in range(len(self.dec) - 1, -1, -1):
                x = nn.functional.interpolate(self.lateral[i](x), scale_factor=2.0,
                                              mode="bilinear", align_corners=False)
                x = self.dec[i](x + skips[i])
            return self.up(self.head(x))

    return UNet()


# ============================================================================ data
@dataclasses.dataclass(frozen=True)
class Sample:
    """One page at the model scale."""

    name: str
    source: str              # "own" or "eik"
    variant: str             # own: profile; eik: clean/scan/wrinkles/layout
    image: np.ndarray        # (H, W, 3) uint8 RGB
    target: np.ndarray       # (H, W) uint8 trace coverage 0-255
    valid: np.ndarray        # (H, W) bool: counted in loss and scores


def to_model_scale(image: np.ndarray, px_per_mm_x: float, px_per_mm_y: float | None = None,
                   target_px_per_mm: float = MODEL_PX_PER_MM) -> np.ndarray:
    """Resize ``image`` from its px/mm to the model scale (area-average when shrinking)."""
    sy_in = px_per_mm_y or px_per_mm_x
    h, w = image.shape[:2]
    nw = max(8, round(w * target_px_per_mm / px_per_mm_x))
    nh = max(8, round(h * target_px_per_mm / sy_in))
    interp = cv2.INTER_AREA if nw * nh < w * h else cv2.INTER_LINEAR
    return cv2.resize(image, (nw, nh), interpolation=interp)


def _own_page(index: int, seed: int, records: Sequence[int], ludb: Path,
              profile: str | None = None) -> Sample:
    """Render, distort and rescale one own page (deterministic in ``index``, ``seed``)."""
    from ecglens.core.io import read_record
    from ecglens.core.layouts import LAYOUTS
    from ecglens.synth.distort import apply_profile
    from ecglens.synth.render import (
        FONT_NAMES,
        GRID_NAMES,
        LABEL_POSITIONS,
        RenderSettings,
        render_page,
    )

    rng = np.random.default_rng([seed, index, 7])
    record_id = int(records[int(rng.integers(len(records)))])
    record = read_record(ludb / str(record_id))
    profiles = [name for name, _ in PROFILE_MIX]
    weights = np.array([w for _, w in PROFILE_MIX])
    drawn = str(rng.choice(profiles, p=weights / weights.sum()))
    profile = profile or drawn
    speed = float(rng.choice([25.0, 25.0, 50.0]))
    duration = 250.0 / speed
    start = float(rng.uniform(0, max(0.0, record.duration_s - duration))) \
        if hasattr(record, "duration_s") else 0.0
    settings = RenderSettings(
        layout=str(rng.choice(sorted(LAYOUTS))), speed_mm_s=speed,
        gain_mm_mv=float(rng.choice([5.0, 10.0, 10.0, 20.0])),
        dpi=float(rng.uniform(*OWN_DPI)), grid=str(rng.choice(GRID_NAMES)),
        font=str(rng.choice(FONT_NAMES)), trace_width_mm=float(rng.uniform(0.18, 0.45)),
        label_position=str(rng.choice(LABEL_POSITIONS)), paper=str(rng.choice(["a4", "letter"])),
        minor_grid="dots" if rng.random() < 0.25 else "lines",
        grid_extent="page" if rng.random() < 0.33 else "area", start_s=round(start, 2),
        header=bool(rng.random() < 0.8), pulse_feet=bool(rng.random() < 0.8))
    page = render_page(record, settings, trace_mask=True)
    page = apply_profile(page, profile, seed=int(rng.integers(1 << 30)))
    geo = page.geometry
    sx, sy = float(geo["px_per_mm_x"]), float(geo["px_per_mm_y"])
    image = to_model_scale(page.image, sx, sy)
    assert page.trace_mask is not None
    target = to_model_scale(page.trace_mask, sx, sy)
    return Sample(f"own{index:04d}", "own", profile, image, target,
                  np.ones(target.shape, dtype=bool))


def eik_pages(eik_dir: Path) -> list[dict[str, str]]:
    """Rows of the ECG-Image-Kit ``pages.csv``."""
    with open(eik_dir / "pages.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _eik_page(row: dict[str, str], eik_dir: Path) -> Sample:
    """One ECG-Image-Kit page at the model scale with its drawn trace target."""
    import wfdb

    page = row["page"]
    bgr = cv2.imread(str(eik_dir / "images" / f"{page}.jpg"), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(eik_dir / "images" / f"{page}.jpg")
    image = to_model_scale(bgr[..., ::-1], EIK_PX_PER_MM)
    k = MODEL_PX_PER_MM / EIK_PX_PER_MM
    with gzip.open(eik_dir / "geometry" / f"{page}.json.gz", "rt") as fh:
        geo = json.load(fh)
    truth = wfdb.rdrecord(str(eik_dir / "truth" / page)).p_signal
    names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    h, w = image.shape[:2]
    shift = 4
    target = np.zeros((h, w), dtype=np.uint8)
    valid = np.ones((h, w), dtype=bool)
    pen_px = EIK_PEN_MM * MODEL_PX_PER_MM
    thickness = max(1, round(pen_px))
    value = 255 if pen_px >= 1.0 else max(64, round(255 * pen_px))
    for lead in geo["eikdev"]["leads"]:
        n = np.arange(int(lead["start_sample"]), int(lead["end_sample"]))
        v = truth[n, names.index(lead["lead"])]
        rc, cc = lead["row_coef"], lead["col_coef"]
        rows = (rc[0] + rc[1] * n + rc[2] * v) * k
        cols = (cc[0] + cc[1] * n + cc[2] * v) * k
        ok = np.isfinite(rows) & np.isfinite(cols)
        # generator pixel centres are at +0.5; OpenCV's at 0
        pts = np.column_stack([cols[ok] - 0.5, rows[ok] - 0.5])
        pts = np.round(pts * (1 << shift)).astype(np.int32)
        if len(pts) >= 2:
            cv2.polylines(target, [pts.reshape(-1, 1, 2)], False, value, thickness,
                          cv2.LINE_AA, shift)
        if int(lead["start_sample"]) > 0 and not lead["rhythm_strip"] and len(pts):
            # separator bar at a column boundary: printed, not in the geometry
            r0 = (rc[0] + rc[1] * n[0]) * k
            c0 = (cc[0] + cc[1] * n[0]) * k
            valid[max(0, round(r0 - 6 * MODEL_PX_PER_MM)):round(r0 + 6 * MODEL_PX_PER_MM),
                  max(0, round(c0 - 1.2 * MODEL_PX_PER_MM)):round(c0 + 1.2 * MODEL_PX_PER_MM)
                  ] = False
        if int(lead["start_sample"]) == 0 and len(pts):
            # calibration pulse: printed left of the row's first sample, not in the geometry
            r0 = (rc[0] + rc[1] * n[0]) * k
            c0 = (cc[0] + cc[1] * n[0]) * k
            x0, x1 = max(0, round(c0 - 14 * MODEL_PX_PER_MM)), round(c0 - 0.3 * MODEL_PX_PER_MM)
            y0 = max(0, round(r0 - 13 * MODEL_PX_PER_MM))
            y1 = round(r0 + 3 * MODEL_PX_PER_MM)
            if x1 > x0:
                valid[y0:y1, x0:x1] = False
    return Sample(page, "eik", row["variant"], image, target, valid)


def build_data(out: Path, seed: int, eik_dir: Path, ludb: Path) -> None:
    """Write every page of the training/validation data once (``<out>/data/*.npz``)."""
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Any]] = []
    for i in range(N_OWN_TRAIN):
        jobs.append((f"train_own{i:04d}", lambda i=i: _own_page(i, seed, TRAIN_RECORDS, ludb)))
    for i in range(N_OWN_VAL):
        jobs.append((f"val_own{i:04d}",
                     lambda i=i: _own_page(10_000 + i, seed + 1, VAL_RECORDS, ludb)))
    for row in eik_pages(eik_dir):
        split = "val" if int(row["strat_fold"]) == 9 else "train"
        jobs.append((f"{split}_{row['page']}", lambda row=row: _eik_page(row, eik_dir)))
    _make(data, jobs)


def build_test_renders(out: Path, seed: int, ludb: Path, per_profile: int = N_TEST_PER_PROFILE
                       ) -> None:
    """Held-out own pages for scoring per profile (``<out>/data/test_*.npz``): validation
    records, another seed stream, every profile ``per_profile`` times."""
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Any]] = []
    for k, (profile, _) in enumerate(PROFILE_MIX):
        for i in range(per_profile):
            index = 20_000 + 100 * k + i
            jobs.append((f"test_own{index:05d}", lambda index=index, profile=profile: _own_page(
                index, seed + 2, VAL_RECORDS, ludb, profile)))
    _make(data, jobs)


def _make(data: Path, jobs: Sequence[tuple[str, Any]]) -> None:
    t0 = time.time()
    for j, (name, make) in enumerate(jobs):
        path = data / f"{name}.npz"
        if path.exists():
            continue
        s = make()
        np.savez(path, image=s.image, target=s.target, valid=s.valid,
                 meta=np.array([s.name, s.source, s.variant]))
        if j % 20 == 0:
            log.info("data %d/%d (%.0f s)", j + 1, len(jobs), time.time() - t0)


def load_data(out: Path, split: str) -> list[Sample]:
    """The cached pages of ``split`` (``train``, ``val`` or ``test``)."""
    samples = []
    for path in sorted((out / "data").glob(f"{split}_*.npz")):
        with np.load(path) as z:
            name, source, variant = (str(v) for v in z["meta"])
            samples.append(Sample(name, source, variant, z["image"], z["target"], z["valid"]))
    return samples


# ============================================================================ crops
def _crop(s: Sample, rng: np.random.Generator, size: int, augment: bool
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A crop (image float32 CHW, target 0/1, valid 0/1), on the trace most of the time."""
    h, w = s.target.shape
    scale = float(np.exp(rng.uniform(-SCALE_JITTER, SCALE_JITTER))) if augment else 1.0
    src = min(h, w, max(16, round(size / scale)))
    if rng.random() < 0.7:
        ys, xs = np.nonzero(s.target[::4, ::4] > 128)
        if len(ys):
            j = int(rng.integers(len(ys)))
            cy, cx = ys[j] * 4, xs[j] * 4
        else:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
    else:
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0 = int(np.clip(cy - src // 2 + rng.integers(-src // 4, src // 4 + 1), 0, h - src))
    x0 = int(np.clip(cx - src // 2 + rng.integers(-src // 4, src // 4 + 1), 0, w - src))
    img: np.ndarray = s.image[y0:y0 + src, x0:x0 + src]
    tgt: np.ndarray = s.target[y0:y0 + src, x0:x0 + src]
    val: np.ndarray = s.valid[y0:y0 + src, x0:x0 + src].astype(np.uint8)
    if src != size:
        interp = cv2.INTER_AREA if src > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
        tgt = cv2.resize(tgt, (size, size), interpolation=interp)
        val = cv2.resize(val, (size, size), interpolation=cv2.INTER_NEAREST)
    x = img.astype(np.float32) / 255.0
    if augment:
        if rng.random() < 0.3:
            x = x[..., rng.permutation(3)]
        if rng.random() < 0.15:
            x = np.repeat(x.mean(axis=2, keepdims=True), 3, axis=2)
        gain = rng.uniform(0.75, 1.15)
        x = np.clip((x - 0.5) * rng.uniform(0.7, 1.2) + 0.5, 0, 1) * gain
        if rng.random() < 0.2:
            x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 1.0))
        if rng.random() < 0.3:
            x = x + rng.normal(0, rng.uniform(0.005, 0.04), x.shape).astype(np.float32)
        if rng.random() < 0.5:
            x, tgt, val = x[:, ::-1], tgt[:, ::-1], val[:, ::-1]
        if rng.random() < 0.5:
            x, tgt, val = x[::-1], tgt[::-1], val[::-1]
        x = np.clip(x, 0, 1)
    t = (tgt >= TARGET_LEVEL * 255).astype(np.float32)
    return (np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32), t,
            val.astype(np.float32))


def _batch(samples: Sequence[Sample], rng: np.random.Generator, n: int, size: int,
           augment: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    own = [s for s in samples if s.source == "own"]
    eik = [s for s in samples if s.source == "eik"]
    xs, ts, vs = [], [], []
    for k in range(n):
        pool = own if (k % 2 == 0 and own) or not eik else eik
        x, t, v = _crop(pool[int(rng.integers(len(pool)))], rng, size, augment)
        xs.append(x)
        ts.append(t)
        vs.append(v)
    return np.stack(xs), np.stack(ts)[:, None], np.stack(vs)[:, None]


# ============================================================================ scores
@dataclasses.dataclass(frozen=True)
class Scores:
    """Dice and IoU of ``probability > 0.5`` against the target (valid pixels only)."""

    dice: float
    iou: float
    n: int


def scores(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> Scores:
    """Pooled Dice/IoU of boolean ``pred`` vs boolean ``target``."""
    if valid is not None:
        pred, target = pred & valid, target & valid
    tp = float(np.sum(pred & target))
    fp = float(np.sum(pred & ~target))
    fn = float(np.sum(~pred & target))
    return Scores(2 * tp / max(2 * tp + fp + fn, 1.0), tp / max(tp + fp + fn, 1.0), 1)


# ============================================================================ training
def _val_batch(val: Sequence[Sample], source: str, n: int, size: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(12345)
    pool = [s for s in val if s.source == source]
    xs, ts, vs = [], [], []
    for k in range(n):
        x, t, v = _crop(pool[k % len(pool)], rng, size, augment=False)
        xs.append(x)
        ts.append(t)
        vs.append(v)
    return np.stack(xs), np.stack(ts)[:, None], np.stack(vs)[:, None]


def train(out: Path, steps: int, seed: int, device: str = "cpu", resume: bool = False,
          max_minutes: float | None = None) -> Path:
    """Train (or resume) until ``steps``; checkpoints in ``<out>/ckpt.pt``; returns it."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_set = load_data(out, "train")
    val_set = load_data(out, "val")
    log.info("train pages: %d own, %d eik; val pages: %d own, %d eik",
             sum(s.source == "own" for s in train_set), sum(s.source == "eik" for s in train_set),
             sum(s.source == "own" for s in val_set), sum(s.source == "eik" for s in val_set))
    model = build_model().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps,
                                                pct_start=0.05)
    ckpt = out / "ckpt.pt"
    step = 0
    if resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        step = int(state["step"])
        log.info("resumed at step %d", step)
    vals = {src: _val_batch(val_set, src, 24, 256) for src in ("eik", "own")}
    t0 = time.time()
    running = 0.0
    while step < steps:
        model.train()
        x, t, v = (torch.from_numpy(a).to(device) for a in _batch(train_set, rng, BATCH,
                                                                   CROP_PX, True))
        logits = model(x)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, t, reduction="none")
        bce = (bce * v).sum() / v.sum().clamp(min=1)
        p = torch.sigmoid(logits) * v
        dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + (t * v).sum() + 1)
        loss = bce + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if step % 25 == 0:
            log.info("step %d loss %.4f (%.2f s/step)", step, running,
                     (time.time() - t0) / max(1, step))
        last = step == steps or (max_minutes is not None
                                 and time.time() - t0 > 60 * max_minutes)
        if step % VAL_EVERY == 0 or last:
            model.eval()
            with torch.no_grad():
                msg = []
                for src, (vx, vt, vv) in vals.items():
                    pv = torch.sigmoid(model(torch.from_numpy(vx).to(device))).cpu().numpy() > 0.5
                    sc = scores(pv, vt > 0.5, vv > 0.5)
                    msg.append(f"{src} dice {sc.dice:.3f} iou {sc.iou:.3f}")
            log.info("step %d val: %s", step, "; ".join(msg))
        if step % CKPT_EVERY == 0 or last:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state(), "step": step, "seed": seed,
                        "steps": steps}, tmp)
            os.replace(tmp, ckpt)
        if last:
            break
    return ckpt


# ============================================================================ export
def export_onnx(ckpt: Path, onnx_path: Path, opset: int = 17) -> Path:
    """Write the model (sigmoid applied, dynamic H/W) as ONNX with the scale in metadata."""
    import onnx
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    model = build_model()
    model.load_state_dict(state["model"])
    model.eval()

    class WithSigmoid(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.m(x))

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(WithSigmoid(model).eval(), (torch.zeros(1, 3, 256, 256),), str(onnx_path),
                      input_names=["image"], output_names=["probability"],
                      opset_version=opset, dynamo=False,
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                    "probability": {0: "batch", 2: "height", 3: "width"}})
    m = onnx.load(str(onnx_path))
    for key, value in {"px_per_mm": str(MODEL_PX_PER_MM), "step": str(state["step"]),
                       "seed": str(state["seed"])}.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(m, str(onnx_path))
    import onnxruntime as ort

    x = torch.rand(1, 3, 320, 480)
    with torch.no_grad():
        want = torch.sigmoid(model(x)).numpy()
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"image": x.numpy()})[0]
    diff = float(np.max(np.abs(got - want)))
    log.info("ONNX vs torch on a random 320 x 480 input: max |dp| = %.2e", diff)
    if diff > 1e-4:
        raise RuntimeError(f"ONNX export disagrees with torch (max |dp| = {diff:.2e})")
    return onnx_path


def evaluate(out: Path, onnx_path: Path | None, threads: int = 1) -> dict[str, Any]:
    """Dice/IoU on the ECG-Image-Kit fold-9 pages and the held-out own pages
    (``build_test_renders``; whole pages at the model scale), per source and variant (pooled
    pixel counts), and the median seconds per page; writes ``<out>/eval.json``.

    ``onnx_path`` None scores the digitizer's heuristic ink mask instead (``digitize.ink``,
    which also keeps text) as a baseline (``<out>/eval_ink.json``)."""
    from ecglens.digitize.segment import probability_at_model_scale

    counts: dict[str, np.ndarray] = {}
    per_page = []
    seconds = []
    pages = [s for s in load_data(out, "val") if s.source == "eik"] + load_data(out, "test")
    for s in pages:
        t0 = time.perf_counter()
        if onnx_path is None:
            try:
                pred = _ink_mask(s.image)
            except Exception as exc:  # a baseline failure counts as an empty mask
                log.warning("%s: ink baseline failed (%s: %s)", s.name, type(exc).__name__, exc)
                pred = np.zeros(s.target.shape, dtype=bool)
        else:
            pred = probability_at_model_scale(s.image, threads, onnx_path) > 0.5
        seconds.append(time.perf_counter() - t0)
        tgt = s.target >= TARGET_LEVEL * 255
        pred, tgt = pred & s.valid, tgt & s.valid
        c = np.array([np.sum(pred & tgt), np.sum(pred & ~tgt), np.sum(~pred & tgt)], float)
        for key in (s.source, f"{s.source}/{s.variant}"):
            counts[key] = counts.get(key, np.zeros(3)) + c
        sc = scores(pred, tgt)
        per_page.append({"page": s.name, "source": s.source, "variant": s.variant,
                         "dice": round(sc.dice, 4), "iou": round(sc.iou, 4)})
    result: dict[str, Any] = {"onnx": str(onnx_path or "digitize.ink baseline"), "groups": {},
                              "pages": per_page,
                              "median_s_per_page_model_scale": float(np.median(seconds))}
    for key in sorted(counts):
        tp, fp, fn = counts[key]
        mine = [p for p in per_page if key in (p["source"], f"{p['source']}/{p['variant']}")]
        result["groups"][key] = {"pages": len(mine),
                                 "dice": round(2 * tp / max(2 * tp + fp + fn, 1), 4),
                                 "iou": round(tp / max(tp + fp + fn, 1), 4),
                                 "precision": round(tp / max(tp + fp, 1), 4),
                                 "recall": round(tp / max(tp + fn, 1), 4),
                                 "median_page_dice": round(float(np.median(
                                     [p["dice"] for p in mine])), 4)}
        log.info("%-22s pages %3d  dice %.3f  iou %.3f  precision %.3f  recall %.3f", key,
                 len(mine), *(result["groups"][key][k]
                              for k in ("dice", "iou", "precision", "recall")))
    name = "eval.json" if onnx_path is not None else "eval_ink.json"
    (out / name).write_text(json.dumps(result, indent=1))
    return result


def _ink_mask(image: np.ndarray) -> np.ndarray:
    """The digitizer's heuristic ink mask (grid found on the page itself), for the baseline."""
    from ecglens.digitize.grid import find_grid
    from ecglens.digitize.ink import find_ink

    grid = find_grid(image, dpi_prior=MODEL_PX_PER_MM * 25.4)
    return np.asarray(find_ink(image, grid).mask, dtype=bool)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: build the data cache, train, export."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m ecglens.digitize.segment_train")
    p.add_argument("--out", required=True, help="data cache and checkpoints (outside git)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (checkpointed) after this much training time")
    p.add_argument("--data-only", action="store_true", help="build the data cache and stop")
    p.add_argument("--export", default=None, const="", nargs="?",
                   help="export the checkpoint to ONNX (default digitize/weights/...) and stop")
    p.add_argument("--evaluate", default=None, const="", nargs="?",
                   help="score an ONNX file (default: the committed one) on the validation "
                        "pages and stop")
    p.add_argument("--ink-baseline", action="store_true",
                   help="score the digitizer's heuristic ink mask on the same pages and stop")
    p.add_argument("--eik", default=str(EIK_DIR_DEFAULT))
    p.add_argument("--ludb", default=str(LUDB_DIR_DEFAULT))
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.export is not None:
        from ecglens.digitize.segment import WEIGHTS_PATH

        path = export_onnx(out / "ckpt.pt", Path(a.export) if a.export else WEIGHTS_PATH)
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
        return 0
    if a.ink_baseline:
        build_test_renders(out, a.seed, Path(a.ludb))
        evaluate(out, None)
        return 0
    if a.evaluate is not None:
        from ecglens.digitize.segment import WEIGHTS_PATH

        build_test_renders(out, a.seed, Path(a.ludb))
        evaluate(out, Path(a.evaluate) if a.evaluate else WEIGHTS_PATH, a.threads)
        return 0
    import torch

    torch.set_num_threads(a.threads)
    cv2.setNumThreads(1)
    build_data(out, a.seed, Path(a.eik), Path(a.ludb))
    if a.data_only:
        return 0
    train(out, a.steps, a.seed, a.device, a.resume, a.max_minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

