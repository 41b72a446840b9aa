"""Learning curve of the superclass classifier: fold-9 macro-AUC against training-set size.

Trains the committed recipe on nested, seeded subsets of PTB-XL folds 1–8 (no LUDB/CinC, so
the x-axis is PTB-XL records only), each run choosing its epoch on fold 9 and reporting fold 9
(the choosing fold: the values are slightly optimistic, and so is every point alike). A
power law ``AUC(n) = a − b·n^(−c)`` fitted to the points is extrapolated to the ~17,000
training records of the published benchmark (Strodthoff et al. 2021: 0.930 on fold 10).

Usage::

    python benchmarks/classify_learning_curve.py --fractions 0.125 0.25 0.5 1.0 --epochs 30 \
        --out benchmarks/out/classify_lc --plot docs/learning_curve.png

Runs already in ``--out`` (``frac_<f>/superclass.json``) are reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from ecglens.classify.train import TrainConfig, save, train  # noqa: E402

ANCHOR_AUC = 0.930
ANCHOR_N = 17_084  # PTB-XL 1.0.3 folds 1-8 (superdiagnostic benchmark training set)


def power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """AUC(n) = a − b·n^(−c)."""
    return a - b * np.power(n, -c)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.125, 0.25, 0.5, 1.0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "classify_lc"))
    p.add_argument("--plot", default=str(REPO / "docs" / "learning_curve.png"))
    a = p.parse_args(argv)
    out = Path(a.out)
    points = []
    for frac in a.fractions:
        run_dir = out / f"frac_{frac:g}"
        meta_path = run_dir / "superclass.json"
        if not meta_path.exists():
            cfg = TrainConfig(extra=(), epochs=a.epochs, seed=a.seed, threads=a.threads,
                              train_fraction=frac)
            save(train(cfg, f"learning curve fraction {frac}"), run_dir)
        meta = json.loads(meta_path.read_text())
        points.append({"fraction": frac, "n_train": meta["n_train_ptbxl"],
                       "fold9_macro_auc_file": meta["fold9_file"]["macro_auc"],
                       "fold9_macro_auc_paper3x4+1": meta["fold9_paper3x4+1"]["macro_auc"],
                       "fold9_auc_per_class": meta["fold9_file"]["auc"],
                       "best_epoch": meta["best_epoch"], "train_wall_s": meta["train_wall_s"]})
        logging.info("fraction %g: n=%d AUC %.4f", frac, points[-1]["n_train"],
                     points[-1]["fold9_macro_auc_file"])
    n = np.array([pt["n_train"] for pt in points], float)
    auc = np.array([pt["fold9_macro_auc_file"] for pt in points])
    fit = None
    if len(points) >= 3:
        from scipy.optimize import curve_fit

        try:
            params, _ = curve_fit(power_law, n, auc, p0=(0.95, 1.0, 0.5),
                                  bounds=([0.5, 0.0, 0.05], [1.0, 100.0, 2.0]), maxfev=20000)
            fit = {"a": float(params[0]), "b": float(params[1]), "c": float(params[2]),
                   "auc_at_17k": float(power_law(np.array(ANCHOR_N), *params))}
        except RuntimeError as exc:
            logging.warning("power-law fit failed: %s", exc)
    result = {"points": points, "fit": fit, "anchor": {"auc": ANCHOR_AUC, "n": ANCHOR_N},
              "note": "fold 9 = choosing fold (epoch picked on it); PTB-XL subset is "
                      "AFIB-enriched; single seed per point"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "learning_curve.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, Path(a.plot))
    print(json.dumps(result, indent=1))
    return 0


def plot(result: dict, path: Path) -> None:
    """AUC vs n (log x), the fit and its extrapolation, the published anchor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = result["points"]
    n = np.array([p["n_train"] for p in pts], float)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(n, [p["fold9_macro_auc_file"] for p in pts], "o-", color="C0",
            label="file signals (fold 9)")
    ax.plot(n, [p["fold9_macro_auc_paper3x4+1"] for p in pts], "s--", color="C1",
            label="3x4+1 paper pattern + reading noise (fold 9)")
    fit = result.get("fit")
    if fit:
        grid = np.logspace(np.log10(n.min()), np.log10(ANCHOR_N), 100)
        ax.plot(grid, power_law(grid, fit["a"], fit["b"], fit["c"]), ":", color="C0",
                label=f"power-law fit → {fit['auc_at_17k']:.3f} at 17k")
    ax.plot([ANCHOR_N], [ANCHOR_AUC], "k*", ms=12,
            label="Strodthoff et al. 2021 (fold 10, 17k records)")
    ax.axhline(0.90, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("PTB-XL training records (folds 1-8 subset)")
    ax.set_ylabel("macro-AUC, 5 superclasses")
    ax.set_title("Learning curve (single seed; fold 9 chose the epoch)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
