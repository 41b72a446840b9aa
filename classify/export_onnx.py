"""Export the committed superclass model to ONNX and check it against torch.

Command (writes ``classify/weights/superclass.onnx``)::

    python -m ecglens.classify.export_onnx

The ONNX graph takes ``input`` ``(batch, 24, 1000)`` float32 (see
:func:`classify.data.normalize`) and returns ``probabilities`` ``(batch, 5)`` (sigmoid
applied), so an edge device needs only onnxruntime and the normalisation.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecglens.classify.data import N_SAMPLES
from ecglens.classify.predict import WEIGHTS_DIR, load_model

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class OnnxCheck:
    """Agreement of ONNX and torch on the same inputs."""

    path: str
    n_inputs: int
    max_abs_diff: float


def export(weights_dir: str | Path | None = None, out: str | Path | None = None,
           opset: int = 17) -> Path:
    """Write the sigmoid-probability model as ONNX (dynamic batch); returns the path."""
    import torch

    loaded = load_model(str(weights_dir) if weights_dir else None)
    out = Path(out) if out else Path(weights_dir or WEIGHTS_DIR) / "superclass.onnx"

    class WithSigmoid(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.model(x))

    wrapped = WithSigmoid(loaded.model).eval()
    example = torch.zeros(1, 24, N_SAMPLES)
    torch.onnx.export(wrapped, (example,), str(out), input_names=["input"],
                      output_names=["probabilities"], opset_version=opset,
                      dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
                      dynamo=False)
    return out


def onnx_session(path: str | Path | None = None):
    """An onnxruntime CPU session of the exported model (one intra-op thread)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path or WEIGHTS_DIR / "superclass.onnx"), opts,
                                providers=["CPUExecutionProvider"])


def compare(inputs: np.ndarray, onnx_path: str | Path | None = None,
            weights_dir: str | None = None) -> OnnxCheck:
    """Max |p_onnx − p_torch| over ``inputs`` ``(n, 24, 1000)``."""
    from ecglens.classify.predict import predict_proba

    p_torch = predict_proba(inputs, load_model(weights_dir))
    sess = onnx_session(onnx_path)
    p_onnx = sess.run(["probabilities"], {"input": inputs.astype(np.float32)})[0]
    return OnnxCheck(str(onnx_path or WEIGHTS_DIR / "superclass.onnx"), len(inputs),
                     float(np.max(np.abs(p_onnx - p_torch))))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: export, then compare on fold-9 records of the shared data."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(prog="python -m ecglens.classify.export_onnx")
    p.add_argument("--weights", default=None, help="weights folder (default: committed)")
    p.add_argument("--out", default=None, help="ONNX path (default: WEIGHTS/superclass.onnx)")
    p.add_argument("--check-data", default=str(Path(__file__).resolve().parents[2] / "shared"
                                               / "data" / "ptbxl"),
                   help="PTB-XL folder for the comparison (fold 9 records)")
    a = p.parse_args(argv)
    path = export(a.weights, a.out)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    from ecglens.classify.data import load_ptbxl, normalize

    data = load_ptbxl(a.check_data)
    fold9 = data.subset(data.folds == 9)
    inputs = np.stack([normalize(s) for s in fold9.signals])
    check = compare(inputs, path, a.weights)
    print(f"ONNX vs torch on {check.n_inputs} fold-9 records: max |dp| = {check.max_abs_diff:.2e}")
    return 0 if check.max_abs_diff < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
