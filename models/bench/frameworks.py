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
    """A benchmark model: its family (which builder and forward functions it uses), default
    batch size, a description, and the keyword arguments of the family's graph builder."""

    name: str
    family: str
    batch: int
    describe: str
    config: tuple[tuple[str, Any], ...] = ()

    def build(self, batch: int | None = None, seed: int = 0) -> gc.Graph:
        return _BUILDERS[self.family](dict(self.config), batch or self.batch, seed)

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.config)


def _build_mlp(config: dict, batch: int, seed: int) -> gc.Graph:
    from graphc.models.mlp import build_mlp

    return build_mlp(config["sizes"], batch=batch, seed=seed)


def _build_lenet(config: dict, batch: int, seed: int) -> gc.Graph:
    from graphc.models.cnn import build_cnn

    return build_cnn(config["size"], classes=config["classes"], batch=batch, seed=seed)


def _build_encoder(config: dict, batch: int, seed: int) -> gc.Graph:
    from graphc.models.transformer import build_transformer

    return build_transformer(**config, batch=batch, seed=seed)


_BUILDERS: dict[str, Callable[[dict, int, int], gc.Graph]] = {
    "mlp": _build_mlp, "lenet": _build_lenet, "encoder": _build_encoder}
ENCODER = (("vocab", 1000), ("seq", 128), ("dim", 256), ("heads", 4), ("hidden", 1024),
           ("classes", 10))

BENCH_MODELS: dict[str, BenchModel] = {m.name: m for m in (
    BenchModel("mlp-tiny", "mlp", 32, "MLP 784-128-10", (("sizes", (784, 128, 10)),)),
    BenchModel("mlp-medium", "mlp", 128, "MLP 784-512-512-10",
               (("sizes", (784, 512, 512, 10)),)),
    BenchModel("mlp-large", "mlp", 256, "MLP 1024-4096-4096-1024",
               (("sizes", (1024, 4096, 4096, 1024)),)),
    BenchModel("lenet", "lenet", 64, "LeNet-style CNN on 1x28x28 (conv 6@5x5, 16@5x5, fc "
               "256-120-10)", (("size", 28), ("classes", 10))),
    BenchModel("encoder", "encoder", 8, "transformer encoder block (seq 128, d 256, 4 heads, "
               "FFN 1024, vocab 1000)", ENCODER),
)}


def _index_range(graph: gc.Graph, name: str, classes: int) -> int:
    """Valid values of an integer input: the rows of the table it gathers from, else classes."""
    for node in graph.nodes:
        if node.op == "gather" and node.inputs[1].name == name:
            return node.inputs[0].type.shape[node.attrs.get("axis", 0)]
    return classes


def make_batch(graph: gc.Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """A random batch for every `input` of the graph: floats ~ U[0, 1), integer inputs in
    [0, rows) of the table they index, labels in [0, classes) (the `logits` width)."""
    rng = np.random.default_rng(seed)
    classes = graph.outputs["logits"].type.shape[-1]
    feeds = {}
    for inp in graph.inputs_with_role("input"):
        t = inp.value.type
        if np.issubdtype(t.np_dtype, np.integer):
            high = _index_range(graph, inp.name, classes)
            feeds[inp.name] = rng.integers(0, high, t.shape).astype(t.np_dtype)
        else:
            feeds[inp.name] = rng.random(t.shape, dtype=t.np_dtype)
    return feeds


FEED = "feed:"  # prefix of the batch's arrays in the saved .npz (the rest are params)


def pack(params: Arrays, feeds: Arrays) -> dict[str, np.ndarray]:
    """Params and batch as one flat dict, the form the orchestrator saves."""
    return {**params, **{FEED + k: v for k, v in feeds.items()}}


def split(arrays: Arrays) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(params, batch) from the saved arrays (copies: every framework updates its own)."""
    params = {k: np.array(v) for k, v in arrays.items() if not k.startswith(FEED)}
    return params, {k[len(FEED):]: np.array(v) for k, v in arrays.items() if k.startswith(FEED)}


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


# --- NumPy (hand-written training steps) --------------------------------------------------
def numpy_step(model: BenchModel, batch: int, arrays: Arrays, lr: float) -> Step:
    """The model's hand-written NumPy step: models/mlp.py's baseline, models/bench/numpy_steps.py's
    for the CNN and the encoder (their forward passes are the models' own baselines)."""
    from graphc.models.bench.numpy_steps import NUMPY_STEPS

    params, feeds = split(arrays)
    return NUMPY_STEPS[model.family](model.settings, params, feeds, lr)


# --- PyTorch (eager) -----------------------------------------------------------------------
def _fc_layers(p: Mapping[str, Any]) -> int:
    return sum(1 for k in p if k.startswith("fc") and k.endswith(".weight"))


def _torch_fc(p: dict, h, first: int = 1):
    import torch

    n = _fc_layers(p)
    for i in range(first, n + 1):
        h = torch.addmm(p[f"fc{i}.bias"], h, p[f"fc{i}.weight"])
        if i < n:
            h = torch.relu(h)
    return h


def _torch_mlp(config: dict, p: dict, feeds: dict):
    return _torch_fc(p, feeds["x"])


def _torch_lenet(config: dict, p: dict, feeds: dict):
    import torch
    import torch.nn.functional as F
    from graphc.models.cnn import LAYOUTS

    size = config["size"]
    h = feeds["x"].reshape(-1, 1, size, size)
    for layer, (_, _, pad) in enumerate(LAYOUTS[size][:2], 1):
        h = F.conv2d(h, p[f"conv{layer}.weight"], p[f"conv{layer}.bias"], padding=pad)
        h = F.max_pool2d(torch.relu(h), 2, 2)
    return _torch_fc(p, h.flatten(1))


def _torch_encoder(config: dict, p: dict, feeds: dict):
    """The encoder block (attention through F.scaled_dot_product_attention)."""
    import torch.nn.functional as F

    bsz, t, d, heads = *feeds["tokens"].shape, config["dim"], config["heads"]

    def ln(x, name):
        return F.layer_norm(x, (d,), p[f"{name}.weight"], p[f"{name}.bias"], eps=1e-5)

    def lin(x, name):
        return x @ p[f"{name}.weight"] + p[f"{name}.bias"]

    x = F.embedding(feeds["tokens"], p["embed.weight"]) + p["pos.weight"]
    h = ln(x, "ln1")
    q, k, v = (lin(h, f"attn.{n}").reshape(bsz, t, heads, -1).transpose(1, 2) for n in "qkv")
    ctx = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(bsz, t, d)
    x = x + lin(ctx, "attn.out")
    h = lin(F.gelu(lin(ln(x, "ln2"), "mlp.fc1")), "mlp.fc2")
    return lin(ln(x + h, "ln3").mean(1), "head")


_TORCH: dict[str, Callable] = {"mlp": _torch_mlp, "lenet": _torch_lenet,
                               "encoder": _torch_encoder}


def torch_step(model: BenchModel, batch: int, arrays: Arrays, lr: float,
               compiled: bool = False) -> Step:
    """Eager PyTorch: forward, `F.cross_entropy`, `backward()`, `torch.optim.SGD.step()`; with
    `compiled`, forward and loss go through `torch.compile` (backward via AOTAutograd)."""
    import torch
    import torch.nn.functional as F

    params, feeds = split(arrays)
    p = {k: torch.from_numpy(v).requires_grad_() for k, v in params.items()}
    f = {k: torch.from_numpy(v) for k, v in feeds.items()}
    opt = torch.optim.SGD(list(p.values()), lr=lr)
    forward, config = _TORCH[model.family], model.settings

    def loss_of(p, f):
        return F.cross_entropy(forward(config, p, f), f["y"])
    if compiled:
        loss_of = torch.compile(loss_of)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_of(p, f)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


# --- JAX (jit) -----------------------------------------------------------------------------
def _jax_fc(p: dict, h):
    import jax

    n = _fc_layers(p)
    for i in range(1, n + 1):
        h = h @ p[f"fc{i}.weight"] + p[f"fc{i}.bias"]
        if i < n:
            h = jax.nn.relu(h)
    return h


def _jax_mlp(config: dict, p: dict, feeds: dict):
    return _jax_fc(p, feeds["x"])


def _jax_lenet(config: dict, p: dict, feeds: dict):
    import jax
    from graphc.models.cnn import LAYOUTS
    from jax import lax

    size = config["size"]
    h = feeds["x"].reshape(-1, 1, size, size)
    for layer, (_, _, pad) in enumerate(LAYOUTS[size][:2], 1):
        h = lax.conv_general_dilated(h, p[f"conv{layer}.weight"], (1, 1), [(pad, pad)] * 2,
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.nn.relu(h + p[f"conv{layer}.bias"][None, :, None, None])
        h = lax.reduce_window(h, -float("inf"), lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    return _jax_fc(p, h.reshape(h.shape[0], -1))


def _jax_encoder(config: dict, p: dict, feeds: dict):
    import jax
    import jax.numpy as jnp

    bsz, t, d, heads = *feeds["tokens"].shape, config["dim"], config["heads"]

    def ln(x, name):
        mean = x.mean(-1, keepdims=True)
        var = jnp.square(x - mean).mean(-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + 1e-5) * p[f"{name}.weight"] + p[f"{name}.bias"]

    def lin(x, name):
        return x @ p[f"{name}.weight"] + p[f"{name}.bias"]

    x = p["embed.weight"][feeds["tokens"]] + p["pos.weight"]
    h = ln(x, "ln1")
    q, k, v = (lin(h, f"attn.{n}").reshape(bsz, t, heads, -1).transpose(0, 2, 1, 3)
               for n in "qkv")
    s = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / (d // heads) ** 0.5, axis=-1)
    x = x + lin((s @ v).transpose(0, 2, 1, 3).reshape(bsz, t, d), "attn.out")
    h = lin(jax.nn.gelu(lin(ln(x, "ln2"), "mlp.fc1"), approximate=False), "mlp.fc2")
    return lin(ln(x + h, "ln3").mean(1), "head")


_JAX: dict[str, Callable] = {"mlp": _jax_mlp, "lenet": _jax_lenet, "encoder": _jax_encoder}


def jax_step(model: BenchModel, batch: int, arrays: Arrays, lr: float) -> Step:
    """One `jax.jit` of value_and_grad and the SGD update, params donated (updated in place)."""
    import functools

    import jax
    import jax.numpy as jnp

    params, feeds = split(arrays)
    forward, config = _JAX[model.family], model.settings

    def loss_fn(p, f):
        logp = jax.nn.log_softmax(forward(config, p, f), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, f["y"][:, None], axis=-1))

    @functools.partial(jax.jit, donate_argnums=0)
    def update(p, f):
        loss, grads = jax.value_and_grad(loss_fn)(p, f)
        return jax.tree_util.tree_map(lambda a, g: a - lr * g, p, grads), loss

    state = {"p": jax.device_put(params)}
    f = jax.device_put({k: v.astype(np.int32) if v.dtype == np.int64 else v
                        for k, v in feeds.items()})

    def step():
        state["p"], loss = update(state["p"], f)
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
