"""Build the scikit-learn-made ONNX test model and scikit-learn's reference probabilities.

Input: nothing (needs scikit-learn and skl2onnx, which graphc's tests do not: run it by hand
after `pip install scikit-learn skl2onnx`). Output: tests/data/sklearn_mlp.onnx, an
MLPClassifier (64-32-10, relu, softmax) trained on the digits data and exported by skl2onnx with
its usual outputs (the int64 label and a ZipMap of class probabilities, ai.onnx.ml ops), and
tests/data/sklearn_mlp.npz with a fixed held-out batch `x` (f32 [16, 64], pixels / 16), its
digit `labels`, and scikit-learn's `predict_proba` on it (`proba`).
"""
from __future__ import annotations

import os
import warnings

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=40, random_state=0)
        clf.fit(x[:1500], y[:1500])
    model = to_onnx(clf, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    with open(os.path.join(HERE, "sklearn_mlp.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    batch = slice(1500, 1516)
    np.savez(os.path.join(HERE, "sklearn_mlp.npz"), x=x[batch], labels=y[batch],
             proba=clf.predict_proba(x[batch]))
    print(f"held-out accuracy {clf.score(x[1500:], y[1500:]):.3f}")


if __name__ == "__main__":
    main()
