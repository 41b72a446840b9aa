"""Train the trace-direction network (:mod:`digitize.trace_direction`) and export it to ONNX.

Command (seeded; about 5 minutes on one CPU core; writes ``digitize/weights/trace_direction.onnx``
and ``trace_direction.json``)::

    python -m ecglens.digitize.trace_direction_train --steps 4000 --seed 0

Data: PTB-XL 100-Hz records of ``strat_fold`` 1–8 (training) and 9 (validation; fold 10 is
never read). Each example is a 2.5-s window of one lead, made to look like a rough centre line
read off paper (speed ×0.45–2.2, smoothing, pixel steps, noise, baseline wander, clipped tall
waves, two leads spliced as on a 3x4 row, gaps filled by straight lines), normalised per window.
The target is "upright"; the network's score is ``g(x) - g(-x[::-1])``, so the turned copy is
scored exactly as the negative and the two classes are balanced by construction.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from pathlib import Path

import numpy as np

from ecglens.digitize.trace_direction import (
    FS_HZ,
    MODEL_FILE,
    WEIGHTS_DIR,
    WINDOW_S,
    normalise_window,
)

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
PTBXL_ROOT = REPO.parent / "shared" / "data" / "ptbxl"
TRAIN_FOLDS = tuple(range(1, 9))
VALIDATION_FOLD = 9
N_WINDOW = round(WINDOW_S * FS_HZ)


def _augment(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """One window of a rough paper centre line from a ``(1000, 12)`` record (None: flat)."""
    n_src = signal.shape[0]
    scale = float(np.exp(rng.uniform(np.log(0.45), np.log(2.2))))  # source samples per output
    span = N_WINDOW * scale
    if span >= n_src - 2:
        scale = (n_src - 2) / N_WINDOW
        span = N_WINDOW * scale
    start = rng.uniform(0, n_src - 1 - span)
    positions = start + np.arange(N_WINDOW) * scale
    lead = int(rng.integers(12))
    trace = np.interp(positions, np.arange(n_src), signal[:, lead])
    if rng.random() < 0.3:  # two leads on one row, as on a 3x4 page
        other = int(rng.integers(12))
        cut = int(rng.integers(N_WINDOW // 5, 4 * N_WINDOW // 5))
        second = np.interp(positions, np.arange(n_src), signal[:, other])
        trace = np.concatenate([trace[:cut], second[cut:] - second[cut] + trace[cut - 1]])
    if not np.all(np.isfinite(trace)) or np.std(trace) < 1e-3:
        return None
    trace = trace + rng.uniform(-0.3, 0.3) * np.sin(
        2 * np.pi * rng.uniform(0.05, 0.5) * np.arange(N_WINDOW) / FS_HZ + rng.uniform(0, 6.3))
    if rng.random() < 0.5:  # a thick pen or blur
        from scipy.ndimage import gaussian_filter1d

        trace = gaussian_filter1d(trace, rng.uniform(0.3, 2.0))
    if rng.random() < 0.4:  # tall waves cut by a neighbouring row or the cell edge
        limit = np.quantile(np.abs(trace - np.median(trace)), rng.uniform(0.85, 0.99))
        trace = np.clip(trace, np.median(trace) - limit, np.median(trace) + limit)
    step = rng.uniform(0.0, 0.15) * np.std(trace)  # pixel steps
    if step > 0:
        trace = np.round(trace / step) * step
    trace = trace + rng.normal(0, rng.uniform(0, 0.15) * np.std(trace), N_WINDOW)
    if rng.random() < 0.3:  # a gap bridged by a straight line
        a = int(rng.integers(0, N_WINDOW - 10))
        b = min(N_WINDOW - 1, a + int(rng.integers(5, N_WINDOW // 4)))
        trace[a:b + 1] = np.linspace(trace[a], trace[b], b - a + 1)
    return normalise_window(trace)


def make_batch(signals: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, 1, N_WINDOW)`` upright training windows."""
    out: list[np.ndarray] = []
    while len(out) < size:
        window = _augment(signals[int(rng.integers(len(signals)))], rng)
        if window is not None:
            out.append(window)
    return np.stack(out)[:, None, :]


def build_model():  # type: ignore[no-untyped-def]
    """``g(x) - g(-x[::-1])`` with a small convolutional ``g`` (about 30 k weights)."""
    import torch
    from torch import nn

    class Branch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            widths = (1, 16, 32, 32, 48)
            for a, b in itertools.pairwise(widths):
                layers += [nn.Conv1d(a, b, 7, padding=3), nn.BatchNorm1d(b), nn.ReLU(),
                           nn.MaxPool1d(2)]
            self.features = nn.Sequential(*layers)
            self.head = nn.Linear(2 * widths[-1], 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.features(x)
            return self.head(torch.cat([f.mean(dim=2), f.amax(dim=2)], dim=1)).squeeze(1)

    class Antisymmetric(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.g = Branch()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # both copies in one batch, so that batch normalisation sees them alike (two
            # batches would let the network tell them apart by their statistics)
            both = self.g(torch.cat([x, -torch.flip(x, dims=[2])], dim=0))
            return both[: x.shape[0]] - both[x.shape[0]:]

    return Antisymmetric()


def _load(folds: tuple[int, ...]) -> np.ndarray:
    from ecglens.classify.data import load_ptbxl

    cache = REPO / "benchmarks" / "out" / "classify_cache" / "ptbxl100.npz"
    data = load_ptbxl(PTBXL_ROOT, cache=cache)
    keep = np.isin(data.folds, folds)
    return np.asarray(data.signals[keep], dtype=np.float32)


def train(steps: int, seed: int, out_dir: Path, checkpoint: Path, batch: int = 128,
          device: str = "cpu") -> dict[str, object]:
    """Train (resuming from ``checkpoint`` if it exists), export ONNX, return the metrics."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    train_signals = _load(TRAIN_FOLDS)
    val_signals = _load((VALIDATION_FOLD,))
    val_rng = np.random.default_rng(seed + 1000)
    val_x = torch.from_numpy(make_batch(val_signals, val_rng, 4000))
    model = build_model().to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    first = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        first = int(state["step"])
        log.info("resumed at step %d", first)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    clock = time.perf_counter()
    for step in range(first, steps):
        rng = np.random.default_rng([seed, step])
        x = torch.from_numpy(make_batch(train_signals, rng, batch)).to(device)
        model.train()
        # every window is upright; the antisymmetric score makes its turned copy the negative
        # class at the same time
        loss = loss_fn(model(x), torch.ones(batch, device=device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if (step + 1) % 500 == 0 or step + 1 == steps:
            model.eval()
            with torch.no_grad():
                val = model(val_x.to(device)).cpu().numpy()
            log.info("step %d loss %.3f validation accuracy %.4f (%.0f s)", step + 1,
                     float(loss.detach()), float(np.mean(val > 0)), time.perf_counter() - clock)
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                        "schedule": schedule.state_dict(), "step": step + 1}, checkpoint)
    model.eval().cpu()
    with torch.no_grad():
        val = model(val_x).numpy()
    metrics = {"validation_windows": len(val),
               "validation_accuracy": round(float(np.mean(val > 0)), 4),
               "validation_median_score": round(float(np.median(val)), 3)}
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (val_x[:2],), str(out_dir / MODEL_FILE), input_names=["input"],
                      output_names=["score"], dynamic_axes={"input": {0: "n"}, "score": {0: "n"}},
                      opset_version=17, dynamo=False)
    card = {"model": "trace_direction", "input": f"(n, 1, {N_WINDOW}) normalised windows, "
            f"{FS_HZ:g} Hz", "output": "score: > 0 upright, < 0 turned by 180 deg",
            "data": "PTB-XL 100 Hz, folds 1-8 train, fold 9 validation, fold 10 unused",
            "steps": steps, "batch": batch, "seed": seed,
            "command": f"python -m ecglens.digitize.trace_direction_train --steps {steps} "
                       f"--seed {seed}", **metrics}
    (out_dir / "trace_direction.json").write_text(json.dumps(card, indent=1) + "\n")
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(WEIGHTS_DIR))
    p.add_argument("--checkpoint", default=str(REPO / "benchmarks" / "out" /
                                               "trace_direction" / "checkpoint.pt"))
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    card = train(a.steps, a.seed, Path(a.out), Path(a.checkpoint), device=a.device)
    print(json.dumps(card, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
