"""What a consistency comparison may claim: a rule fixed before looking at the numbers.

Every mode generates grid k from the same noise as independent generation does, so grids pair up. For each
multi-view mode against independent:

  1. a pair counts when both grids have at least MIN_GRID_OBSERVATIONS scored observations (an object whole
     and apart from the others in at least two views of a frame; train/evaluate.py); each grid is summarised
     by the median of its reprojection errors (a few wild triangulations cannot swing it);
  2. fewer than MIN_PAIRS counting pairs: "not enough observations" - no percentage, no direction;
  3. otherwise a two-sided exact Wilcoxon signed-rank test on the pairs' log ratios log(mode / independent)
     (zeros dropped; exact by enumeration of the rank sums, so it holds for 6 pairs as for 60): at p < ALPHA
     the mode is "lower" or "higher" than independent, and only then is a percentage printed (from the pooled
     medians of all scored observations, and only when they point the same way as the paired grids: the pooled
     median weighs the grids with more observations more, so it can disagree, and the line then says so
     without a percentage); above ALPHA: "no clear difference", without a percentage. The
     signed-rank test rather than the sign test: with the demo's 8 grids the sign test decides only at 8 of 8,
     the signed-rank test also when the one grid the other way is a near tie.

So a direction is printed with less than ALPHA chance when the two modes do not differ, a sign change between
two seeds needs two significant results in opposite directions, and a small sample says so instead of
printing a percentage. Every line states its sample sizes. tests/test_claims.py checks the rule
and that the shipped demo's verdicts hold for seeds 0-4 (benchmarks/tiny_demo_seeds.json).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

MIN_GRID_OBSERVATIONS = 3
MIN_PAIRS = 6
ALPHA = 0.05
VERDICTS = ("lower", "higher", "no clear difference", "not enough observations")


def signed_rank_test(differences: Sequence[float]) -> float:
    """Two-sided exact p-value of the Wilcoxon signed-rank test (zeros dropped, tied magnitudes given their
    average rank): the share of the 2^n sign assignments whose positive rank sum is at least as far from its
    mean as the observed one."""
    d = [float(x) for x in differences if x != 0 and math.isfinite(x)]
    n = len(d)
    if n == 0:
        return 1.0
    order = sorted(range(n), key=lambda i: abs(d[i]))
    ranks = [0.0] * n
    i = 0
    while i < n:   # average ranks over runs of equal magnitudes
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    doubled = [int(round(2 * r)) for r in ranks]          # integers, so the rank sums can be counted exactly
    counts = {0: 1}
    for r in doubled:                                      # distribution of the positive rank sum under H0
        nxt = dict(counts)
        for total, c in counts.items():
            nxt[total + r] = nxt.get(total + r, 0) + c
        counts = nxt
    observed = sum(r for r, x in zip(doubled, d) if x > 0)
    mean = sum(doubled) / 2
    extreme = sum(c for total, c in counts.items() if abs(total - mean) >= abs(observed - mean) - 1e-9)
    return min(1.0, extreme / 2 ** n)


def grid_median(errors: Sequence[float]) -> Optional[float]:
    """A grid's median reprojection error, None below MIN_GRID_OBSERVATIONS observations."""
    vals = sorted(float(e) for e in errors if e is not None and math.isfinite(e))
    if len(vals) < MIN_GRID_OBSERVATIONS:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else 0.5 * (vals[mid - 1] + vals[mid])


@dataclass
class Claim:
    mode: str
    verdict: str              # one of VERDICTS
    pairs: int                # grids counted in both
    wins: int                 # pairs where the mode's median is lower
    losses: int               # pairs where it is higher
    p_value: float
    median: Optional[float]   # pooled medians over every scored observation
    baseline_median: Optional[float]
    observations: int
    baseline_observations: int
    baseline: str = "independent"                 # what the mode is compared with, as the line names it
    measure: str = "median reprojection error"    # what the percentage is of

    @property
    def percent(self) -> Optional[float]:
        """How much lower (positive) or higher (negative) the pooled median is, only for a decided verdict that
        the pooled medians agree with."""
        if self.verdict not in ("lower", "higher") or self.median is None or not self.baseline_median:
            return None
        pct = 100.0 * (1.0 - self.median / self.baseline_median)
        agrees = pct > 0 if self.verdict == "lower" else pct < 0
        return pct if agrees else None

    def line(self) -> str:
        sizes = f"{self.observations} vs {self.baseline_observations} observations"
        if self.verdict == "not enough observations":
            return (f"{self.mode}: not enough observations to compare with {self.baseline} ({self.pairs} grids with "
                    f"at least {MIN_GRID_OBSERVATIONS} scored observations in both, {MIN_PAIRS} needed; {sizes})")
        test = f"lower in {self.wins} of {self.wins + self.losses} paired grids, signed-rank p = {self.p_value:.3f}"
        if self.verdict == "no clear difference":
            return f"{self.mode}: no clear difference from {self.baseline} ({test}; {sizes})"
        pct = self.percent
        if pct is None:   # the paired grids decide one way, the pooled medians do not follow
            return (f"{self.mode}: {self.verdict} {self.measure} than {self.baseline} grid by grid, but not in the "
                    f"pooled medians ({self.median:.2f} vs {self.baseline_median:.2f} px; {test}; {sizes})")
        return (f"{self.mode}: {abs(pct):.0f}% {self.verdict} {self.measure} than {self.baseline} "
                f"({self.median:.2f} vs {self.baseline_median:.2f} px; {test}; {sizes})")


def compare(mode: str, grids: Sequence[Sequence[float]], baseline: Sequence[Sequence[float]],
            median: Optional[float] = None, baseline_median: Optional[float] = None,
            baseline_name: str = "independent", measure: str = "median reprojection error") -> Claim:
    """The claim for `mode` against independent from per-grid error lists (grid k of both made from the same
    noise); median / baseline_median: the pooled medians to report (default: over all the given errors).
    Another comparison of paired per-grid errors under the same rule names its baseline and measure (the
    demo's novel views: the objects' distances from their true places against copying view 0's layout)."""
    pooled = lambda gs: [e for g in gs for e in g]
    median = median_of(pooled(grids)) if median is None else median
    baseline_median = median_of(pooled(baseline)) if baseline_median is None else baseline_median
    pairs = [(grid_median(a), grid_median(b)) for a, b in zip(grids, baseline)]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    wins, losses = sum(a < b for a, b in pairs), sum(a > b for a, b in pairs)
    p = signed_rank_test([math.log(max(a, 1e-6) / max(b, 1e-6)) for a, b in pairs])
    if len(pairs) < MIN_PAIRS:
        verdict = "not enough observations"
    elif p < ALPHA:
        verdict = "lower" if wins > losses else "higher"
    else:
        verdict = "no clear difference"
    return Claim(mode, verdict, len(pairs), wins, losses, p, median, baseline_median, len(pooled(grids)),
                 len(pooled(baseline)), baseline_name, measure)


def closer_share(pairs: Sequence) -> dict:
    """[(a, b)] per scene or grid (None where one is missing) -> {"closer": the share of pairs with a < b (a the
    lower error or distance), "p": the signed-rank p of a - b, "n": the pairs counted}; None and 0 without any.
    The benchmarks' scene-by-scene columns; the demo's claims add the rule above (MIN_PAIRS, ALPHA, log ratios)."""
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not pairs:
        return {"closer": None, "p": None, "n": 0}
    return {"closer": sum(a < b for a, b in pairs) / len(pairs), "p": signed_rank_test([a - b for a, b in pairs]),
            "n": len(pairs)}


def median_of(values) -> Optional[float]:
    """The median of `values` (a list or a 1-d tensor; None entries skipped; the mean of the middle two when
    their count is even); None when nothing is left."""
    vals = sorted(float(v) for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else 0.5 * (vals[mid - 1] + vals[mid])


def claims(modes: dict, baseline: str = "independent") -> list[Claim]:
    """Claims of every mode against `baseline` from summaries with "per_scene_errors" (train/evaluate.summarise)."""
    base = modes.get(baseline)
    if base is None:
        return []
    return [compare(name, r.get("per_scene_errors", []), base.get("per_scene_errors", []), r.get("reproj_px_median"),
                    base.get("reproj_px_median"))
            for name, r in modes.items() if name != baseline and r.get("per_scene_errors") is not None]
