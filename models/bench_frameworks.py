"""The benchmark models and one training step per framework, for `graphc bench`.

Input: a bench model name (`BENCH_MODELS`), a batch size, and the arrays the orchestrator saved
(every param under its graphc name, plus the batch `x`, `y`). Output: `make_step(framework,
...)`, a zero-argument callable doing one SGD training step in place (forward, mean softmax
cross-entropy, backward, `p -= lr * g`) and returning the loss before the update (a float, or a
framework scalar that `float()` turns into one, which blocks until the step is done).

Every framework computes the same function from the same weights: graphc compiles the model's
graph; NumPy runs the model's hand-written baseline; PyTorch runs eagerly with `torch.optim.SGD`;
JAX runs one `jax.jit` of value_and_grad plus the update, with the params donated. Weights keep
graphc's layouts (a linear layer is `x @ W + b`, W of shape [in, out]) in every framework.
Frameworks are imported inside the factories, so a runner process only loads its own.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

import graphc as gc

Arrays = Mapping[str, np.ndarray]
Step = Callable[[], Any]
FRAMEWORKS = ("graphc", "numpy", "numpy-avx512", "torch", "torch-compile", "jax")


@dataclass(frozen=True)
class BenchModel:
    """A benchmark model: its family (which forward functions it uses), default batch size and
    the graph builder; `sizes` are an MLP's layer widths."""

    name: str
    family: str
    batch: int
    describe: str
    sizes: tuple[int, ...] = ()

    def build(self, batch: int | None = None, seed: int = 0) -> gc.Graph:
        return _BUILDERS[self.family](self, batch or self.batch, seed)


def _build_mlp(model: BenchModel, batch: int, seed: int) -> gc.Graph:
    from models.mlp import build_mlp

    return build_mlp(model.sizes, batch=batch, seed=seed, name=model.name.replace("-", "_"))


_BUILDERS: dict[str, Callable[[BenchModel, int, int], gc.Graph]] = {"mlp": _build_mlp}

BENCH_MODELS: dict[str, BenchModel] = {m.name: m for m in (
    BenchModel("mlp-tiny", "mlp", 32, "MLP 784-128-10", (784, 128, 10)),
    BenchModel("mlp-medium", "mlp", 128, "MLP 784-512-512-10", (784, 512, 512, 10)),
    BenchModel("mlp-large", "mlp", 256, "MLP 1024-4096-4096-1024", (1024, 4096, 4096, 1024)),
)}


def make_batch(graph: gc.Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """A random batch for every `input` of the graph: floats ~ U[0, 1), integer labels in
    [0, classes) where classes is the last dimension of the `logits` output."""
    rng = np.random.default_rng(seed)
    classes = graph.outputs["logits"].type.shape[-1]
    feeds = {}
    for inp in graph.inputs_with_role("input"):
        t = inp.value.type
        if np.issubdtype(t.np_dtype, np.integer):
            feeds[inp.name] = rng.integers(0, classes, t.shape).astype(t.np_dtype)
        else:
            feeds[inp.name] = rng.random(t.shape, dtype=t.np_dtype)
    return feeds


def split(arrays: Arrays) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(params, batch) from the saved arrays: the batch is `x` and `y`, the rest are params."""
    params = {k: np.array(v) for k, v in arrays.items() if k not in ("x", "y")}
    return params, {"x": np.array(arrays["x"]), "y": np.array(arrays["y"])}


# --- graphc --------------------------------------------------------------------------------
def compile_graphc(model: BenchModel, batch: int, arrays: Arrays, lr: float):
    """The compiled graphc training step of `model` with the saved params."""
    params, _ = split(arrays)
    graph = model.build(batch)
    graph = graph.replace(initializers={**graph.initializers, **params})
    return gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=lr))


def graphc_step(model: BenchModel, batch: int, arrays: Arrays, lr: float) -> Step:
    step = compile_graphc(model, batch, arrays, lr)
    feeds = split(arrays)[1]
    return lambda: step.run(feeds)


# --- NumPy (the models' hand-written baselines) --------------------------------------------
def _numpy_mlp(params: dict, feeds: dict, lr: float) -> Step:
    from models.mlp import numpy_sgd_step

    x, y = feeds["x"], feeds["y"]
    return lambda: numpy_sgd_step(params, x, y, lr)


_NUMPY: dict[str, Callable[[dict, dict, float], Step]] = {"mlp": _numpy_mlp}


def numpy_step(model: BenchModel, batch: int, arrays: Arrays, lr: float) -> Step:
    params, feeds = split(arrays)
    return _NUMPY[model.family](params, feeds, lr)


# --- PyTorch (eager) -----------------------------------------------------------------------
def _torch_mlp(p: dict, x):
    import torch

    n = sum(1 for k in p if k.endswith(".weight"))
    for i in range(1, n + 1):
        x = torch.addmm(p[f"fc{i}.bias"], x, p[f"fc{i}.weight"])
        if i < n:
            x = torch.relu(x)
    return x


_TORCH: dict[str, Callable] = {"mlp": _torch_mlp}


def torch_step(model: BenchModel, batch: int, arrays: Arrays, lr: float,
               compiled: bool = False) -> Step:
    """Eager PyTorch: forward, `F.cross_entropy`, `backward()`, `torch.optim.SGD.step()`; with
    `compiled`, forward and loss go through `torch.compile` (backward via AOTAutograd)."""
    import torch
    import torch.nn.functional as F

    params, feeds = split(arrays)
    p = {k: torch.from_numpy(v).requires_grad_() for k, v in params.items()}
    x, y = torch.from_numpy(feeds["x"]), torch.from_numpy(feeds["y"].astype(np.int64))
    opt = torch.optim.SGD(list(p.values()), lr=lr)
    forward = _TORCH[model.family]

    def loss_of(p, x, y):
        return F.cross_entropy(forward(p, x), y)
    if compiled:
        loss_of = torch.compile(loss_of)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_of(p, x, y)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


# --- JAX (jit) -----------------------------------------------------------------------------
def _jax_mlp(p: dict, x):
    import jax

    n = sum(1 for k in p if k.endswith(".weight"))
    for i in range(1, n + 1):
        x = x @ p[f"fc{i}.weight"] + p[f"fc{i}.bias"]
        if i < n:
            x = jax.nn.relu(x)
    return x


_JAX: dict[str, Callable] = {"mlp": _jax_mlp}


def jax_step(model: BenchModel, batch: int, arrays: Arrays, lr: float) -> Step:
    """One `jax.jit` of value_and_grad and the SGD update, params donated (updated in place)."""
    import functools

    import jax
    import jax.numpy as jnp

    params, feeds = split(arrays)
    forward = _JAX[model.family]

    def loss_fn(p, x, y):
        logp = jax.nn.log_softmax(forward(p, x), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))

    @functools.partial(jax.jit, donate_argnums=0)
    def update(p, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        return jax.tree_util.tree_map(lambda a, g: a - lr * g, p, grads), loss

    state = {"p": jax.device_put(params)}
    x, y = jax.device_put(feeds["x"]), jax.device_put(feeds["y"].astype(np.int32))

    def step():
        state["p"], loss = update(state["p"], x, y)
        return loss
    return step


STEPS: dict[str, Callable[[BenchModel, int, Arrays, float], Step]] = {
    "graphc": graphc_step, "numpy": numpy_step, "numpy-avx512": numpy_step,
    "torch": torch_step, "jax": jax_step,
    "torch-compile": lambda *args: torch_step(*args, compiled=True),
}


def make_step(framework: str, model: BenchModel, batch: int, arrays: Arrays, lr: float) -> Step:
    return STEPS[framework](model, batch, arrays, lr)


def version(framework: str) -> str:
    """The version of the framework's package (imported already in its runner)."""
    module = {"numpy-avx512": "numpy", "torch-compile": "torch"}.get(framework, framework)
    if module == "graphc":
        import importlib.metadata as md
        try:
            return md.version("graphc")
        except md.PackageNotFoundError:
            return "dev"
    return getattr(__import__(module), "__version__", "?")
