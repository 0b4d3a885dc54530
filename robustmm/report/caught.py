"""Warnings raised during a run go to the run's log, counted, instead of the terminal.

Third-party packages warn a lot during a run (scikit-survival's RuntimeWarnings on small
bootstrap resamples, MONAI's FutureWarnings); printed, they break the progress bars and hide
the result. Inside :func:`warnings_to_log` every warning is written to the ``robustmm`` logger
(so to ``log.txt``) the first time it occurs, and a count per distinct warning is logged at the
end. Filters set by the user or a test (``-W error::RuntimeWarning``) keep precedence: the
"log every occurrence" filter is appended after them.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from robustmm.text import counted


@dataclass
class WarningCounts:
    counts: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@contextmanager
def warnings_to_log(logger: logging.Logger | None = None) -> Iterator[WarningCounts]:
    log = logger or logging.getLogger("robustmm")
    caught = WarningCounts()
    with warnings.catch_warnings():
        warnings.simplefilter("always", append=True)  # count every occurrence unless a filter says otherwise

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            key = (category.__name__, str(message).strip().splitlines()[0][:300] if str(message).strip() else "",
                   f"{filename}:{lineno}")
            caught.counts[key] += 1
            if caught.counts[key] == 1:
                log.warning("%s: %s (%s; later occurrences only counted)", key[0], key[1], key[2])

        warnings.showwarning = show
        try:
            yield caught
        finally:
            for (name, text, where), count in caught.counts.most_common():
                if count > 1:
                    log.warning("%s occurred %d times: %s (%s)", name, count, text, where)
            if caught.total:
                log.info("%s of %s caught during the run", counted(caught.total, "warning"),
                         counted(len(caught.counts), "kind"))
