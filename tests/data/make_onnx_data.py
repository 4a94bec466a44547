"""Build the PyTorch-made ONNX test models and torch's reference outputs and gradients.

Input: nothing (needs torch, which graphc's tests do not: run it by hand after
`pip install torch`). Output: tests/data/torch_{mlp,cnn,encoder}.onnx and .npz files with one
batch (`x`, `labels`), torch's logits, its mean cross-entropy `loss`, and `grad:<name>` for every
ONNX initializer (the parameters keep their PyTorch names; constant folding is off so no weight
is rewritten under a new name).
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


class Encoder(nn.Module):
    """Token embedding + one pre-norm-free transformer encoder layer (MHA, LayerNorm, GELU MLP)
    + mean pooling + a linear classifier."""

    def __init__(self, vocab=12, d=16, heads=2, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=32, dropout=0.0,
                                                activation="gelu", batch_first=True)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens):
        return self.head(self.layer(self.embed(tokens)).mean(dim=1))


def models():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 2 * 2, 10))
    return {
        "mlp": (mlp, torch.rand(8, 64), 10),
        "cnn": (cnn, torch.rand(4, 1, 8, 8), 10),
        "encoder": (Encoder(), torch.randint(0, 12, (4, 6)), 3),
    }


def build(name, model, x, classes):
    model.eval()
    with torch.no_grad():  # distinct values: the exporter merges identical initializers
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = os.path.join(HERE, f"torch_{name}.onnx")
    torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17,
                      do_constant_folding=False, input_names=["x"], output_names=["logits"])
    labels = torch.arange(x.shape[0]) % classes
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, labels)
    model.zero_grad()
    loss.backward()
    import onnx

    inits = {t.name for t in onnx.load(path).graph.initializer}
    params = dict(model.named_parameters())
    arrays = {"x": x.numpy(), "labels": labels.numpy(), "logits": logits.detach().numpy(),
              "loss": loss.detach().numpy()}
    for init in sorted(inits):
        if init in params:
            arrays[f"grad:{init}"] = params[init].grad.numpy()
    np.savez(os.path.join(HERE, f"torch_{name}.npz"), **arrays)
    print(name, sorted(k for k in arrays if k.startswith("grad:")), sorted(inits - set(params)))


if __name__ == "__main__":
    for name, (model, x, classes) in models().items():
        build(name, model, x, classes)
