"""The standard formulas an A/B verdict needs, nothing more: the difference of two proportions with
its 95 % interval (Newcombe's hybrid score interval, built on Wilson's: sound with few calls and with
rates of 0 % or 100 %, and always within ±100 points), and the calls still needed to tell a
difference apart (normal approximation, for arms of unequal size)."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from statistics import NormalDist

from .. import french

Z95 = NormalDist().inv_cdf(0.975)  # two-sided 95 %
Z80 = NormalDist().inv_cdf(0.80)  # power 80 %
SMALLEST = 0.05  # the smallest difference worth finding: 5 points
ENOUGH = 30  # calls (or visits) an arm needs before any verdict


@dataclass(frozen=True)
class Difference:
    """B's rate minus A's, with its 95 % interval."""

    a: float
    b: float
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.b - self.a

    @property
    def clear(self) -> bool:
        """Whether the interval leaves out zero (a difference at the 5 % level)."""
        return self.low > 0 or self.high < 0

    @property
    def negligible(self) -> bool:
        """Whether the interval rules out any difference of SMALLEST or more: the two are as good."""
        return -SMALLEST < self.low and self.high < SMALLEST


def wilson(hits: int, n: int) -> tuple[float, float]:
    """Wilson's 95 % score interval of a proportion."""
    p = hits / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def difference(hits_a: int, n_a: int, hits_b: int, n_b: int) -> Difference | None:
    """B's proportion minus A's, with Newcombe's 95 % interval; None while an arm has no call."""
    if n_a == 0 or n_b == 0:
        return None
    a, b = hits_a / n_a, hits_b / n_b
    low_a, high_a = wilson(hits_a, n_a)
    low_b, high_b = wilson(hits_b, n_b)
    value = b - a
    return Difference(a, b, value - math.hypot(b - low_b, high_a - a), value + math.hypot(high_b - b, a - low_a))


def calls_needed(found: Difference, n_a: int, n_b: int, share_b: float) -> int:
    """About how many more calls (both arms together, at this share) until a difference the size
    of the one seen (at least SMALLEST) shows at 95 % with 80 % power."""
    gap = max(abs(found.value), SMALLEST)
    a = min(max(found.a, 0.02), 0.98)  # a rate of 0 or 1 so far says little about its variance
    b = min(max(a + math.copysign(gap, found.value or 1), 0.02), 0.98)
    ratio = share_b / (1 - share_b)  # calls in B for one in A
    need_a = (Z95 + Z80) ** 2 * (a * (1 - a) + b * (1 - b) / ratio) / gap**2
    need_b = ratio * need_a
    return max(1, math.ceil(max(max(need_a - n_a, 0) / (1 - share_b), max(need_b - n_b, 0) / share_b)))


def median_difference(a: list[float], b: list[float], rounds: int = 2000) -> tuple[float, float, float] | None:
    """B's median minus A's, with a 95 % percentile-bootstrap interval (resamples drawn with a
    fixed seed: the same figures every time they are shown); None while an arm has no value."""
    if not a or not b:
        return None
    draw = random.Random(20261202)
    differences = sorted(statistics.median(draw.choices(b, k=len(b))) - statistics.median(draw.choices(a, k=len(a))) for _ in range(rounds))
    return statistics.median(b) - statistics.median(a), differences[int(0.025 * rounds)], differences[int(0.975 * rounds) - 1]


def points(value: float) -> str:
    """A difference of rates in percentage points, signed: « +4,2 points »."""
    return french.points(value)
