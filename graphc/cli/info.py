"""`graphc info MODEL|FILE.onnx`: what a model is, before training it.

Input: a registered model name, a text-IR file or an ONNX file (with `--shape NAME=D,D,...` for
symbolic dims), and `--json`. Output: inputs and outputs with shapes; parameter count and bytes;
FLOPs per forward and per training step (graphc/flops.py); the compiled step's kernel count and
arena bytes against the liveness lower bound; ops by type; for an ONNX file also its op types,
any unsupported ones (all of them, in one list) and every initializer's class (param, state,
constant) with the reason. The table is printed; `--json` prints the same facts as JSON.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
from typing import Any

import graphc as gc
from graphc.cli.common import load_graph
from graphc.flops import forward_flops, training_flops


def _shapes(specs: list[str]) -> dict[str, tuple[int, ...]]:
    out = {}
    for spec in specs:
        name, _, dims = spec.partition("=")
        try:
            out[name] = tuple(int(d) for d in dims.split(",") if d)
        except ValueError:
            raise gc.GraphcError(f"--shape {spec!r}: expected NAME=D,D,... with integer "
                                 f"dims") from None
    return out


def _onnx_facts(path: str) -> dict[str, Any]:
    """The ONNX-level facts, readable even when graphc cannot import the model."""
    from graphc.onnx.importer import check_supported
    from graphc.onnx.opsets import default_opset
    from graphc.onnx.reading import read_model

    proto, name, _ = read_model(path)
    facts: dict[str, Any] = {
        "opset": default_opset(proto),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "onnx_ops": dict(collections.Counter(n.op_type for n in proto.graph.node)
                         .most_common())}
    try:
        check_supported(proto, name)
        facts["unsupported"] = []
    except gc.GraphcError as err:
        facts["unsupported"] = [line.strip() for line in str(err).splitlines()[1:]
                                if line.startswith("  ")]
    report = gc.describe_onnx(path).split(": ", 1)[1] if not facts["unsupported"] else ""
    facts["initializers"] = report.splitlines()
    return facts


def _graph_facts(graph: gc.Graph) -> dict[str, Any]:
    def tensors(role):
        return [{"name": i.name, "type": str(i.value.type)} for i in graph.inputs_with_role(role)]

    params = graph.inputs_with_role("param")
    facts = {
        "inputs": tensors("input"),
        "outputs": [{"name": k, "type": str(v.type)} for k, v in graph.outputs.items()],
        "params": len(params), "param_values": sum(i.value.type.size for i in params),
        "param_bytes": sum(i.value.type.nbytes for i in params),
        "state": len(graph.inputs_with_role("state")),
        "forward_flops": forward_flops(graph), "training_flops": training_flops(graph),
        "ops": dict(collections.Counter(n.op for n in graph.nodes).most_common())}
    loss = "loss" if "loss" in graph.outputs else None
    exe = (gc.compile_train_step(graph, loss=loss, optimizer=gc.optim.SGD(lr=0.1))
           if loss and params else gc.compile(graph))
    facts["compiled"] = "training step" if loss and params else "forward"
    facts.update({k: exe.stats[k] for k in ("kernels", "planned_bytes", "lower_bound_bytes",
                                            "naive_bytes")})
    return facts


def _is_onnx(spec: str) -> bool:
    """An .onnx name, or a file that starts as an ONNX protobuf does (field 1, ir_version)."""
    if spec.endswith(".onnx"):
        return True
    if not os.path.isfile(spec):
        return False
    with open(spec, "rb") as f:
        return f.read(1) == b"\x08"


def model_info(spec: str, shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    facts: dict[str, Any] = {"model": spec}
    if _is_onnx(spec):
        facts.update(_onnx_facts(spec))
        if facts["unsupported"]:
            return facts
        graph = gc.load_onnx(spec, shapes or None)
    else:
        graph = load_graph(spec)
    facts.update(_graph_facts(graph))
    return facts


def _bytes(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def format_info(f: dict[str, Any]) -> str:
    lines = [f"model: {f['model']}"]
    if "opset" in f:
        lines.append(f"onnx: opset {f['opset']}, producer {f['producer'] or '?'}, "
                     f"{sum(f['onnx_ops'].values())} nodes: " +
                     ", ".join(f"{k} {v}" for k, v in f["onnx_ops"].items()))
        if f["unsupported"]:
            return "\n".join([*lines, f"unsupported ({len(f['unsupported'])}):",
                              *(f"  {u}" for u in f["unsupported"])])
    for key in ("inputs", "outputs"):
        lines.append(f"{key}: " + ", ".join(f"{t['name']} {t['type']}" for t in f[key]))
    lines += [(f"params: {f['params']} tensors, {f['param_values']:,} values "
              f"({_bytes(f['param_bytes'])}); state: {f['state']} tensors"),
              (f"FLOPs: {f['forward_flops']:,} a forward, {f['training_flops']:,} a training "
              f"step"),
              (f"compiled {f['compiled']}: {f['kernels']} kernels, arena "
              f"{_bytes(f['planned_bytes'])} (lower bound {_bytes(f['lower_bound_bytes'])}, "
              f"one buffer per value {_bytes(f['naive_bytes'])})"),
              "ops: " + ", ".join(f"{k} {v}" for k, v in f["ops"].items())]
    if f.get("initializers"):
        lines += [f["initializers"][0], *(f"  {row}" for row in f["initializers"][1:])]
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    facts = model_info(args.model, _shapes(args.shape))
    print(json.dumps(facts, indent=2) if args.json else format_info(facts))
    return 1 if facts.get("unsupported") else 0


def add_info_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="a model's inputs, params, FLOPs, kernels and memory")
    p.add_argument("model", metavar="MODEL|FILE.onnx",
                   help="a model name (e.g. mlp), a text-IR file or an ONNX file")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D,D,...",
                   help="a static shape for an ONNX input with symbolic dims (repeatable)")
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(func=cmd_info)
