"""The untouched test: committed superclass weights on PTB-XL fold 10 (file signals), once.

Nothing is chosen here: the weights, the epoch and the thresholds were fixed on folds 1–9.
Reports macro/per-class AUC (95 % bootstrap interval over records), F1 at the committed
thresholds, for all fold-10 records of the shared subset and for those without an AFIB
statement (the subset is AFIB-enriched: 152 of 370 fold-10 records), and the same for fold 9
(the choosing fold) for comparison.

Usage::

    python benchmarks/classify_fold10.py --out benchmarks/out/classify_fold10.json
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "classify_fold10.json"))
    a = p.parse_args(argv)

    import pandas as pd
    import torch

    from benchmarks.classify_paper import bootstrap_ci
    from ecglens.classify.data import CLASSES, load_ptbxl, normalize
    from ecglens.classify.predict import load_model, predict_proba
    from ecglens.classify.train import evaluate

    torch.set_num_threads(1)
    data = load_ptbxl(a.data)
    db = pd.read_csv(Path(a.data) / "ptbxl_database.csv").set_index("ecg_id")
    afib_ids = {int(i) for i, s in db.scp_codes.items() if "AFIB" in ast.literal_eval(s)}
    is_afib = np.array([int(r.split(":")[1]) in afib_ids for r in data.record_ids])
    loaded = load_model()
    result = {"model_version": loaded.version, "thresholds": loaded.thresholds}
    for fold in (9, 10):
        for name, keep in (("all", np.ones(len(data), bool)), ("no_afib", ~is_afib)):
            sub = data.subset((data.folds == fold) & keep)
            probs = predict_proba(np.stack([normalize(s) for s in sub.signals]), loaded)
            ev = evaluate(sub.labels, probs, loaded.thresholds)
            result[f"fold{fold}_{name}"] = {
                "role": "untouched test fold, computed once" if fold == 10
                else "choosing fold (epoch + thresholds picked here)",
                "n_records": len(sub), "macro_auc": ev.macro_auc,
                "macro_auc_ci95": bootstrap_ci(sub.labels, probs, n_boot=1000),
                "auc": ev.auc, "f1": ev.f1, "macro_f1": ev.macro_f1,
                "positives": {c: int(sub.labels[:, k].sum()) for k, c in enumerate(CLASSES)},
            }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
