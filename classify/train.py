"""Train the 12-lead superclass classifier (CPU, deterministic).

Folds 1–8 of PTB-XL (optionally plus LUDB and CinC records where their labels map) train; fold 9 is
used for choosing — the epoch kept (early stopping on fold-9 macro-AUC, mean of the file
view and a seeded 3x4+1 paper view) and the per-class decision thresholds (max F1 on fold 9).
Fold 10 is never read here.

Exact command of the committed weights (see ``docs/model_card.md`` for its wall time)::

    python -m ecglens.classify.train --extra none --epochs 30 --seed 0 --threads 1 \
        --out classify/weights

A user with the full PTB-XL download (PhysioNet layout: ``ptbxl_database.csv``,
``scp_statements.csv``, ``records100/``) retrains at the published scale with
``--ptbxl /path/to/ptb-xl-1.0.3``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecglens.classify.data import (
    CLASSES,
    SignalSet,
    apply_augment,
    augment_seed,
    draw_augment,
    load_cinc,
    load_ludb,
    load_ptbxl,
    normalize,
    training_input,
)

log = logging.getLogger(__name__)

MODEL_VERSION = "ecglens-superclass-resnet1d-0.1.0"
REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run (stored in the metadata JSON)."""

    data: str = str(REPO.parent / "shared" / "data")
    ptbxl: str | None = None
    extra: tuple[str, ...] = ()
    epochs: int = 24
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    seed: int = 0
    threads: int = 2
    train_fraction: float = 1.0
    paper_prob: float = 0.8
    patience: int = 8
    widths: tuple[int, ...] = (32, 48, 64, 96)
    kernel: int = 7
    out: str | None = None
    cache: str | None = None


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Metrics of one set of probabilities against labels."""

    macro_auc: float
    auc: dict[str, float]
    f1: dict[str, float]
    macro_f1: float


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (ties averaged); NaN if one class is absent."""
    from scipy.stats import rankdata

    y = np.asarray(y, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def f1_score(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    """F1 of the decisions ``p >= threshold``."""
    y = np.asarray(y, bool)
    pred = p >= threshold
    tp = int((pred & y).sum())
    denom = int(pred.sum()) + int(y.sum())
    return 2 * tp / denom if denom else float("nan")


def best_thresholds(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Per class, the threshold (a midpoint between sorted scores) that maximises F1."""
    out = {}
    for k, name in enumerate(CLASSES):
        y = labels[:, k]
        keep = np.isfinite(y)
        y, p = y[keep].astype(bool), probs[keep, k]
        candidates = np.unique(p)
        mids = np.concatenate([[0.0], (candidates[:-1] + candidates[1:]) / 2])
        f1s = [f1_score(y, p, t) for t in mids]
        out[name] = float(mids[int(np.nanargmax(f1s))])
    return out


def evaluate(labels: np.ndarray, probs: np.ndarray,
             thresholds: dict[str, float] | None = None) -> EvalResult:
    """Per-class and macro AUC (and F1 at ``thresholds`` if given)."""
    auc, f1 = {}, {}
    for k, name in enumerate(CLASSES):
        keep = np.isfinite(labels[:, k])
        auc[name] = roc_auc(labels[keep, k], probs[keep, k])
        if thresholds is not None:
            f1[name] = f1_score(labels[keep, k], probs[keep, k], thresholds[name])
    macro_f1 = float(np.nanmean(list(f1.values()))) if f1 else float("nan")
    return EvalResult(float(np.nanmean(list(auc.values()))), auc, f1, macro_f1)


def _path_key(path: Path) -> str:
    import hashlib

    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]


def load_training_data(cfg: TrainConfig) -> tuple[SignalSet, SignalSet]:
    """(training set, fold-9 choosing set). Fold 10 is dropped here and never returned."""
    data = Path(cfg.data)
    ptbxl_root = Path(cfg.ptbxl) if cfg.ptbxl else data / "ptbxl"
    cache = cfg.cache or str(REPO / "benchmarks" / "out" / "classify_cache" /
                             f"ptbxl100_{_path_key(ptbxl_root)}.npz")
    ptbxl = load_ptbxl(ptbxl_root, cache=cache)
    ptbxl = ptbxl.subset(ptbxl.folds != 10)
    train = ptbxl.subset((ptbxl.folds >= 1) & (ptbxl.folds <= 8))
    choose = ptbxl.subset(ptbxl.folds == 9)
    if cfg.train_fraction < 1.0:
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(train))
        n = max(1, round(cfg.train_fraction * len(train)))
        train = train.subset(np.sort(order[:n]))
    parts = [train]
    if "ludb" in cfg.extra:
        parts.append(load_ludb(data / "ludb"))
    if "cinc" in cfg.extra:
        parts.append(load_cinc(data / "cinc"))
    return SignalSet.concat(parts), choose


def paper_view(signals: np.ndarray, seed: int, pattern: str = "3x4+1") -> np.ndarray:
    """Fixed, seeded paper-like view of ``signals`` (for choosing on fold 9)."""
    out = np.empty((len(signals), 24, signals.shape[1]), np.float32)
    for i, sig in enumerate(signals):
        params = draw_augment(np.random.default_rng(augment_seed(seed, 10_000, i)))
        params = dataclasses.replace(params, pattern=pattern)
        out[i] = normalize(apply_augment(sig, params))
    return out


def predict_inputs(model, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Sigmoid probabilities ``(n, 5)`` of normalised inputs ``(n, 24, 1000)``."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            out.append(torch.sigmoid(model(torch.from_numpy(inputs[i:i + batch_size]))).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a run produced."""

    state_dict: dict
    metadata: dict
    history: list[dict]


def train(cfg: TrainConfig, command: str = "") -> TrainResult:
    """Train one model; returns the best-on-fold-9 weights and their metadata."""
    import torch

    from ecglens.classify.model import ECGResNet1d, ModelConfig, count_parameters

    t_start = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_flush_denormal(True)

    train_set, choose = load_training_data(cfg)
    log.info("training records %d (PTB-XL folds 1-8 + %s), fold-9 records %d",
             len(train_set), ",".join(cfg.extra) or "no extras", len(choose))
    file_view = np.stack([normalize(s) for s in choose.signals])
    paper9 = paper_view(choose.signals, cfg.seed)
    labels = np.nan_to_num(train_set.labels, nan=0.0).astype(np.float32)
    label_known = np.isfinite(train_set.labels).astype(np.float32)

    model_cfg = ModelConfig(widths=tuple(cfg.widths), kernel=cfg.kernel)
    model = ECGResNet1d(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = int(np.ceil(len(train_set) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs,
                                                steps_per_epoch=steps_per_epoch)
    rng = np.random.default_rng(cfg.seed)
    best_score, best_state, best_epoch, history = -np.inf, None, -1, []
    for epoch in range(cfg.epochs):
        model.train()
        t0 = time.time()
        order = rng.permutation(len(train_set))
        losses = []
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = np.stack([training_input(train_set.signals[i], augment_seed(cfg.seed, epoch, i),
                                         cfg.paper_prob) for i in idx])
            logits = model(torch.from_numpy(x))
            loss_el = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, torch.from_numpy(labels[idx]), reduction="none")
            known = torch.from_numpy(label_known[idx])
            loss = (loss_el * known).sum() / known.sum().clamp(min=1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        auc_file = evaluate(choose.labels, predict_inputs(model, file_view)).macro_auc
        auc_paper = evaluate(choose.labels, predict_inputs(model, paper9)).macro_auc
        score = (auc_file + auc_paper) / 2
        history.append({"epoch": epoch, "loss": float(np.mean(losses)),
                        "fold9_macro_auc_file": auc_file, "fold9_macro_auc_paper3x4+1": auc_paper,
                        "seconds": time.time() - t0})
        log.info("epoch %2d loss %.4f fold9 AUC file %.4f paper %.4f (%.0f s)", epoch,
                 np.mean(losses), auc_file, auc_paper, time.time() - t0)
        if score > best_score:
            best_score, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= cfg.patience:
            log.info("early stop at epoch %d (best %d)", epoch, best_epoch)
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    p_file = predict_inputs(model, file_view)
    p_paper = predict_inputs(model, paper9)
    thresholds = best_thresholds(choose.labels, p_file)
    ev_file = evaluate(choose.labels, p_file, thresholds)
    ev_paper = evaluate(choose.labels, p_paper, thresholds)
    n_ptbxl = sum(r.startswith("ptbxl:") for r in train_set.record_ids)
    metadata = {
        "model_version": MODEL_VERSION,
        "classes": list(CLASSES),
        "thresholds": thresholds,
        "thresholds_chosen_on": "PTB-XL fold 9 (file signals), max F1 per class",
        "model_config": dataclasses.asdict(model_cfg),
        "n_parameters": count_parameters(model),
        "input": {"fs_hz": 100.0, "n_samples": 1000, "channels": "12 leads (median removed, "
                  "NaN->0) + 12 observed masks", "lead_order": "I II III aVR aVL aVF V1-V6"},
        "train_config": dataclasses.asdict(cfg),
        "command": command,
        "n_train_records": len(train_set),
        "n_train_ptbxl": int(n_ptbxl),
        "n_fold9_records": len(choose),
        "best_epoch": best_epoch,
        "fold9_file": dataclasses.asdict(ev_file),
        "fold9_paper3x4+1": dataclasses.asdict(ev_paper),
        "selection": "early stopping on PTB-XL fold 9: mean macro-AUC of file view and seeded "
                     "3x4+1 paper view; fold 10 never used",
        "train_wall_s": round(time.time() - t_start, 1),
        "torch_version": torch.__version__,
    }
    return TrainResult(best_state, metadata, history)


def save(result: TrainResult, out_dir: str | Path, fold9_probs: bool = True) -> Path:
    """Write ``superclass.pt`` and ``superclass.json`` into ``out_dir``."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(result.state_dict, out / "superclass.pt")
    meta = dict(result.metadata, history=result.history)
    (out / "superclass.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Command-line → :class:`TrainConfig`."""
    p = argparse.ArgumentParser(prog="python -m ecglens.classify.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig()
    p.add_argument("--data", default=d.data, help="shared data folder (ptbxl/, ludb/, cinc/)")
    p.add_argument("--ptbxl", default=None, help="PTB-XL folder (PhysioNet layout) instead of "
                   "DATA/ptbxl, e.g. the full 21,799-record download")
    p.add_argument("--extra", default="none", help="extra training sets with mapped labels: "
                   "ludb, cinc, ludb,cinc or none (default; on fold 9 they did not help)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--train-fraction", type=float, default=1.0,
                   help="use this fraction of PTB-XL folds 1-8 (learning curve)")
    p.add_argument("--paper-prob", type=float, default=d.paper_prob,
                   help="probability of a paper/reading-error augmentation per record")
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--widths", default=",".join(map(str, d.widths)),
                   help="channels of the residual stages, comma-separated")
    p.add_argument("--kernel", type=int, default=d.kernel, help="residual kernel size")
    p.add_argument("--cache", default=None, help="npz cache of decoded PTB-XL signals")
    p.add_argument("--out", default=None, help="folder for superclass.pt/.json")
    a = p.parse_args(argv)
    extra = tuple(e for e in a.extra.split(",") if e and e != "none")
    return TrainConfig(data=a.data, ptbxl=a.ptbxl, extra=extra, epochs=a.epochs,
                       batch_size=a.batch_size, lr=a.lr, seed=a.seed, threads=a.threads,
                       train_fraction=a.train_fraction, paper_prob=a.paper_prob,
                       patience=a.patience, out=a.out, cache=a.cache,
                       widths=tuple(int(w) for w in a.widths.split(",")), kernel=a.kernel)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = parse_args(argv)
    command = "python -m ecglens.classify.train " + " ".join(sys.argv[1:] if argv is None else argv)
    result = train(cfg, command)
    if cfg.out:
        save(result, cfg.out)
        log.info("wrote %s", cfg.out)
    print(json.dumps({k: result.metadata[k] for k in
                      ("best_epoch", "fold9_file", "fold9_paper3x4+1", "train_wall_s")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
