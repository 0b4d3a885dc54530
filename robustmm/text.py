"""Wording shared by messages and reports."""

from __future__ import annotations


def form(n: int, one: str, many: str | None = None) -> str:
    """The word that goes with ``n`` things: ``one`` when ``n`` is 1, else ``many`` (default ``one`` + "s"):
    ``form(2, "column")`` is "columns", ``form(1, "has", "have")`` "has"."""
    return one if n == 1 else many or one + "s"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` with its noun, singular when ``n`` is 1: ``counted(1, "epoch")`` is "1 epoch", ``counted(3,
    "epoch")`` "3 epochs" (``plural``: for a noun whose plural is not noun + "s")."""
    return f"{n} {form(n, noun, plural)}"
