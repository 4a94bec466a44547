"""FileCheck-style matching for golden pass tests: expected lines appear in order."""
import re


def strip_locs(text: str) -> list[str]:
    return [re.sub(r"  # .*$", "", line).strip() for line in text.splitlines() if line.strip()]


def check_lines(text: str, expected: str) -> None:
    """Each non-blank line of `expected` must occur (as a substring), in order, in `text` (locations
    ignored). A line starting with `NOT:` must occur nowhere."""
    lines = strip_locs(text)
    pos = 0
    for want in (w.strip() for w in expected.strip().splitlines() if w.strip()):
        if want.startswith("NOT:"):
            assert not any(want[4:].strip() in line for line in lines), \
                f"unexpected {want[4:].strip()!r} in:\n{text}"
            continue
        for i in range(pos, len(lines)):
            if want in lines[i]:
                pos = i + 1
                break
        else:
            raise AssertionError(f"line {want!r} not found (in order) in:\n{text}")
