"""FileCheck-style golden tests of passes on the text IR.

Input: a pass's printed output (or the input IR and the pass, for `check_pass`) and the expected
lines. Output: nothing, or an AssertionError that shows the whole text. Expected lines appear in
order as substrings of the output lines (locations ignored); `NEXT:` must be the very next line
after the previous match; `NOT:` must occur nowhere.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from graphc import parse
from graphc.ir import Graph
from graphc.verify import verify


def strip_locs(text: str) -> list[str]:
    return [re.sub(r"  # .*$", "", line).strip() for line in text.splitlines() if line.strip()]


def check_lines(text: str, expected: str) -> None:
    """Each non-blank line of `expected` must occur (as a substring), in order, in `text` (locations
    ignored). A line starting with `NEXT:` must occur in the line right after the previous match;
    a line starting with `NOT:` must occur nowhere."""
    lines = strip_locs(text)
    pos = 0
    for want in (w.strip() for w in expected.strip().splitlines() if w.strip()):
        if want.startswith("NOT:"):
            assert not any(want[4:].strip() in line for line in lines), \
                f"unexpected {want[4:].strip()!r} in:\n{text}"
            continue
        if want.startswith("NEXT:"):
            want = want[5:].strip()
            assert pos > 0 and pos < len(lines) and want in lines[pos], \
                f"line {want!r} is not the next line after line {pos} in:\n{text}"
            pos += 1
            continue
        for i in range(pos, len(lines)):
            if want in lines[i]:
                pos = i + 1
                break
        else:
            raise AssertionError(f"line {want!r} not found (in order) in:\n{text}")


def check_pass(run: Callable[[Graph], Graph], source: str, expected: str) -> Graph:
    """Parse `source`, run the pass, verify its result and check its text against `expected`;
    returns the result for further checks."""
    out = run(parse(source))
    verify(out)
    check_lines(out.to_text(), expected)
    return out
