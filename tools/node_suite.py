"""Run ONNX's whole node conformance suite (shipped in the onnx package) on graphc and count.

Input: optional regexes on case names (`python tools/node_suite.py 'test_sin' 'test_cos'`), or
`--op TYPE` (cases whose op under test is TYPE), `--backend onnxruntime` to count onnxruntime
instead. Output: one line per case that did not pass with its outcome (with `-v` every case), and
the totals: passed; wrong (an output differs: a silent wrong answer); refused (a GraphcError:
graphc says it cannot); crashed (any other exception). With `--json PATH` the per-case outcomes.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import unittest
import warnings
from collections import Counter

import onnx.backend.test
from onnx.backend.test.loader import load_node_model_tests

from graphc.errors import GraphcError


def _op_under_test(cases: dict, name: str) -> str | None:
    base = cases.get(re.sub(r"_expanded(_ver\d+)?$", "", name))
    return base.model.graph.node[0].op_type if base is not None else None


class _Collect(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.outcome: dict[str, tuple[str, str]] = {}

    @staticmethod
    def _name(test) -> str:
        return test.id().rsplit(".", 1)[-1].removesuffix("_cpu")

    def addSuccess(self, test):
        self.outcome[self._name(test)] = ("passed", "")

    def addFailure(self, test, err):
        self.outcome[self._name(test)] = ("wrong", (str(err[1]).splitlines() or [""])[0][:160])

    def addError(self, test, err):
        kind = "refused" if isinstance(err[1], GraphcError) else "crashed"
        first = (str(err[1]).splitlines() or [""])[0][:160]
        self.outcome[self._name(test)] = (kind, f"{type(err[1]).__name__}: {first}")

    def addSkip(self, test, reason):
        pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("patterns", nargs="*", help="regexes on case names (default: all)")
    p.add_argument("--op", action="append", default=[], help="cases of this op type")
    p.add_argument("--backend", choices=("graphc", "onnxruntime"), default="graphc")
    p.add_argument("-v", action="store_true", help="list every case")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        all_cases = {c.name: c for c in load_node_model_tests()}
    names = sorted(n for n in all_cases
                   if (not args.patterns and not args.op)
                   or any(re.search(pat, n) for pat in args.patterns)
                   or _op_under_test(all_cases, n) in args.op)
    if args.backend == "graphc":
        from graphc.onnx import backend
    else:
        from onnxruntime import backend
    test = onnx.backend.test.BackendTest(backend, "node_suite")
    test.include(r"^(" + "|".join(map(re.escape, names)) + r")_cpu$")
    suite = unittest.TestSuite()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case_class in test.test_cases.values():
            for attr in sorted(vars(case_class)):
                method = getattr(case_class, attr)
                if attr.startswith("test_") and not getattr(method, "__unittest_skip__", False):
                    suite.addTest(case_class(attr))
        result = _Collect()
        suite.run(result)
    counts = Counter(kind for kind, _ in result.outcome.values())
    for name in sorted(result.outcome):
        kind, detail = result.outcome[name]
        if args.v or kind != "passed":
            print(f"{kind:8} {name}  {detail}")
    print(f"{len(result.outcome)} cases: " + ", ".join(
        f"{counts[k]} {k}" for k in ("passed", "wrong", "refused", "crashed")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.outcome, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
