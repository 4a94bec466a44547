"""Imported CNNs' training steps: graphc against torch eager, side by side, one thread.

Input: zoo model names (default: resnet18, vgg, mobilenet_v2, audio), `--batch`, `--rounds`.
Output: per model, the median step time of graphc (the model exported by torch's legacy
exporter, imported, SGD step compiled) and of torch eager (the same module, same weights, same
batch, SGD) over interleaved rounds, their ratio, and both first losses (which must agree).
Both run in this process on one thread (`taskset -c 0` it to pin): torch.set_num_threads(1)
and gc.set_num_threads(1). Batch-norm layers are in eval mode in both (statistics fixed).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import graphc as gc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.zoo.check import export
from tests.zoo.models import BUILDERS, Zoo

LR = 0.01


def _zoo(name: str, batch: int) -> Zoo:
    model, inputs, output = BUILDERS[name]()
    inputs = {k: v.repeat((batch // v.shape[0],) + (1,) * (v.ndim - 1)) for k, v in inputs.items()}
    return Zoo(name, model, inputs, output)


def _steps(zoo: Zoo, path: str):
    graph = gc.with_loss(gc.load_onnx(path), "mse", output=zoo.output, labels="target")
    step = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=LR, momentum=0))
    with torch.no_grad():
        target = torch.randn(zoo.model(*zoo.inputs.values()).shape,
                             generator=torch.Generator().manual_seed(7))
    feeds = {**{k: v.numpy() for k, v in zoo.inputs.items()}, "target": target.numpy()}
    opt = torch.optim.SGD(zoo.model.parameters(), lr=LR)
    args = tuple(zoo.inputs.values())

    def torch_step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(zoo.model(*args), target)
        loss.backward()
        opt.step()
        return float(loss)

    return (lambda: step.run(feeds)), torch_step


def _time(fn, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if time.perf_counter() - start >= seconds:
            return (time.perf_counter() - start) / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=["resnet18", "vgg", "mobilenet_v2", "audio"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--round-time", type=float, default=0.5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    gc.set_num_threads(1)
    print(f"{'model':14} {'graphc ms':>10} {'torch ms':>9} {'ratio':>6}  first losses")
    for name in args.models:
        zoo = _zoo(name, args.batch)
        with tempfile.TemporaryDirectory() as tmp:
            ours, theirs = _steps(zoo, export(zoo, Path(tmp) / "m.onnx", "legacy"))
        first = (float(ours()), theirs())
        for fn in (ours, theirs):  # warm-up
            _time(fn, 0.2)
        times = {"graphc": [], "torch": []}
        for _ in range(args.rounds):
            times["graphc"].append(_time(ours, args.round_time))
            times["torch"].append(_time(theirs, args.round_time))
        g, t = (statistics.median(times[k]) * 1e3 for k in ("graphc", "torch"))
        agree = np.isclose(*first, rtol=1e-4)
        print(f"{name:14} {g:10.2f} {t:9.2f} {g / t:6.2f}  {first[0]:.6f} {first[1]:.6f}"
              f"{'' if agree else '  (DIFFER)'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
