"""Wording shared by messages and reports."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` with its noun, singular when ``n`` is 1: ``counted(1, "epoch")`` is "1 epoch", ``counted(3,
    "epoch")`` "3 epochs" (``plural``: for a noun whose plural is not noun + "s")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
