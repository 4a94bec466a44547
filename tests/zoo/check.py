"""Export a zoo model both ways, import it, and hold graphc to onnxruntime and torch autograd.

Input: a `Zoo` (tests/zoo/models.py), an exporter ("legacy": torch.onnx.export at opset 17,
"dynamo": torch.export-based) and a directory. Output: `Report` with the measured figures:
the forward's relative error against onnxruntime, the worst per-parameter norm-wise gradient
error against torch autograd, the five SGD losses of both, and the params graphc trains. The
loss is the mean squared error against a fixed random target (any output shape has one).

The export keeps torch's parametrisation (no constant folding, no onnxscript optimiser), so
every trained initializer is a torch parameter by name and its gradient can be compared; the
default, folded exports are checked against onnxruntime (`forward_only`).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort
import torch

import graphc as gc
from tests.zoo.models import Zoo

STEPS, LR = 5, 0.05
GRAD_FLOOR = 1e-4


@dataclass
class Report:
    forward_rel: float = float("nan")
    grad_rel: dict[str, float] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    torch_losses: list[float] = field(default_factory=list)
    params: set[str] = field(default_factory=set)
    not_torch_params: list[str] = field(default_factory=list)  # trained, but torch does not
    untrained: list[str] = field(default_factory=list)  # torch trains them, graphc does not
    import_compile_s: float = 0.0


def export(zoo: Zoo, path, exporter: str, faithful: bool = True) -> str:
    args = tuple(zoo.inputs.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            torch.onnx.export(zoo.model, args, str(path), dynamo=False, opset_version=17,
                              input_names=list(zoo.inputs), output_names=[zoo.output],
                              do_constant_folding=not faithful)
        else:
            torch.onnx.export(zoo.model, args, str(path), dynamo=True, opset_version=18,
                              input_names=list(zoo.inputs), output_names=[zoo.output],
                              optimize=not faithful, verbose=False)
    return str(path)


def _feeds(zoo: Zoo) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in zoo.inputs.items()}


def _rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30))


def forward_only(zoo: Zoo, path: str) -> float:
    """graphc's compiled forward against onnxruntime's: the relative error."""
    feeds = _feeds(zoo)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    graph = gc.load_onnx(path)
    got = gc.compile(graph).run(feeds)[next(iter(graph.outputs))]
    return _rel(got, want)


def check(zoo: Zoo, path: str) -> Report:
    """Forward vs onnxruntime, gradients and five SGD steps vs torch (see the docstring)."""
    report = Report()
    feeds = _feeds(zoo)
    start = time.perf_counter()
    graph = gc.with_loss(gc.load_onnx(path), "mse", output=zoo.output, labels="target")
    report.params = {i.name for i in graph.inputs_with_role("param")}
    # every name of every parameter: a tied weight has several (GPT-2's lm_head is its wte)
    named = dict(zoo.model.named_parameters(remove_duplicate=False))
    report.not_torch_params = sorted(report.params - set(named))
    params = sorted(report.params)
    grads_fn = gc.compile_value_and_grad(graph, "loss", params)
    step = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=LR, momentum=0.0))
    report.import_compile_s = time.perf_counter() - start

    with torch.no_grad():
        y = zoo.model(*zoo.inputs.values())
    target = torch.randn(y.shape, generator=torch.Generator().manual_seed(7))
    feeds["target"] = target.numpy()
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {k: v for k, v in feeds.items() if k != "target"})[0]
    got = gc.compile(graph).run(feeds)[zoo.output]
    report.forward_rel = _rel(got, want)

    _, grads = grads_fn.run(feeds)
    zoo.model.zero_grad()
    torch.nn.functional.mse_loss(zoo.model(*zoo.inputs.values()), target).backward()
    covered = {id(named[n]) for n in params if n in named}
    report.untrained = sorted(n for n, p in zoo.model.named_parameters()
                              if p.grad is not None and id(p) not in covered)
    want = {n: named[n].grad.numpy() for n in params if n in named and named[n].grad is not None}
    # norm-wise per parameter; a gradient that is zero in exact arithmetic (the key bias of
    # attention: softmax ignores a per-query constant) is measured against the largest one
    floor = GRAD_FLOOR * max((float(np.linalg.norm(w)) for w in want.values()), default=0.0)
    for name, w in want.items():
        report.grad_rel[name] = float(np.linalg.norm(grads[name] - w) /
                                      max(np.linalg.norm(w), floor, 1e-30))

    opt = torch.optim.SGD(zoo.model.parameters(), lr=LR)
    for _ in range(STEPS):
        report.losses.append(float(step.run(feeds)))
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(zoo.model(*zoo.inputs.values()), target)
        loss.backward()
        opt.step()
        report.torch_losses.append(float(loss.detach()))
    return report
