"""Error types: every error graphc raises derives from GraphcError.

Input: a message, optionally a location and the printed node it concerns.
Output: an exception whose text says what went wrong, where, and shows it.
"""
from __future__ import annotations


class GraphcError(Exception):
    """Base class of every graphc error."""


class ShapeError(GraphcError):
    """An op was given operands whose shapes or dtypes it cannot accept."""


class VerifyError(GraphcError):
    """A graph breaks an IR invariant (SSA order, types, attributes).

    `subject` is the part of the graph at fault: the Node, or `("input" | "output" | "update",
    name)`; None when no single part is. The parser maps it back to the line of the text.
    """

    def __init__(self, message: str, subject: object = None):
        super().__init__(message)
        self.subject = subject


class ParseError(GraphcError):
    """Text IR could not be parsed."""


class FeedError(GraphcError):
    """Run-time feeds do not match the graph's inputs."""


class GradientError(GraphcError):
    """Autodiff cannot differentiate part of a graph (all offenders are listed)."""


class GradientCheckError(GraphcError):
    """An autodiff gradient disagrees with central differences past the tolerance."""


class CompileError(GraphcError):
    """Lowering or JIT compilation failed."""


def located(message: str, loc: str | None = None, shown: str | None = None) -> str:
    """Format a message with its location and the printed node under it."""
    text = message if not loc else f"{loc}: {message}"
    if shown:
        text += f"\n    {shown}"
    return text
