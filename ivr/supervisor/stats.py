"""The standard formulas an A/B verdict needs, nothing more: the difference of two proportions with
its 95 % interval (normal approximation), and the calls still needed to tell a difference apart."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

Z95 = NormalDist().inv_cdf(0.975)  # two-sided 95 %
Z80 = NormalDist().inv_cdf(0.80)  # power 80 %
SMALLEST = 0.05  # with no difference seen yet, the one worth finding: 5 points


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


def difference(hits_a: int, n_a: int, hits_b: int, n_b: int) -> Difference | None:
    """B's proportion minus A's, with a Wald 95 % interval; None while an arm has no call."""
    if n_a == 0 or n_b == 0:
        return None
    a, b = hits_a / n_a, hits_b / n_b
    spread = Z95 * math.sqrt(a * (1 - a) / n_a + b * (1 - b) / n_b)
    return Difference(a, b, b - a - spread, b - a + spread)


def calls_needed(found: Difference, n_a: int, n_b: int, share_b: float) -> int:
    """About how many more calls (both arms, at this share) until a difference the size of the one
    seen (at least SMALLEST) would show at 95 % with 80 % power."""
    gap = max(abs(found.value), SMALLEST)
    a = min(max(found.a, 0.02), 0.98)  # a rate of 0 or 1 so far says little about its variance
    b = min(max(found.a + math.copysign(gap, found.value or 1), 0.02), 0.98)
    per_arm = (Z95 + Z80) ** 2 * (a * (1 - a) + b * (1 - b)) / gap**2
    more_a = max(per_arm - n_a, 0) / (1 - share_b)
    more_b = max(per_arm - n_b, 0) / share_b
    return math.ceil(max(more_a, more_b))


def points(value: float) -> str:
    """A difference of rates in percentage points, signed: « +4,2 points »."""
    return f"{value * 100:+.1f}".replace(".", ",") + " points"
