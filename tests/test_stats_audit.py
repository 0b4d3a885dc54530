"""Numbers users cite, against independent references on inputs with a known answer: interval
levels as printed, and the subject-level bootstrap."""

from __future__ import annotations

import pytest

from robustmm.evaluate.seeds import aggregate_seeds
from robustmm.report import story
from robustmm.report.repeats import verdict_text


def _seed_doc(value: float, ref: float) -> dict:
    rec = lambda m, v: {"method": m, "scenario": "natural", "group": "natural", "rate": None,  # noqa: E731
                        "metric": "auc", "value": v, "ci_low": None, "ci_high": None, "n": 10, "drop": None}
    return {"study": "s", "primary_metric": "auc", "records": [rec("a", value), rec("ref", ref)]}


@pytest.mark.parametrize("confidence, label", [(0.95, "95%"), (0.9, "90%"), (0.975, "97.5%"), (0.995, "99.5%")])
def test_printed_interval_level_is_the_level_computed(confidence: float, label: str) -> None:
    """evaluation.confidence 0.975 or 0.995 was printed as 98% / 100% (rounded to a whole percent)."""
    assert story.ci_level({"confidence": confidence}) == label
    docs = {s: _seed_doc(0.8 + 0.01 * s, 0.7) for s in range(3)}
    doc = aggregate_seeds(docs, "ref", confidence)
    assert doc["seeds"]["ci"] == f"{label} t-interval over seed means"
    assert story.ci_label(doc) == "t-interval over seed means"
    assert f"[{label} t-interval over seeds]" in verdict_text(doc)
    # a metrics.json without a stored confidence: the level stated in its interval description
    assert story.ci_level({"seeds": doc["seeds"]}) == label
