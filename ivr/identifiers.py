"""Checks of the identifiers a caller keys in: RPPS, SIRET, FINESS, matricule."""

from __future__ import annotations

from dataclasses import dataclass

from stdnum import luhn
from stdnum.fr import siret

CHECKS = ("rpps", "siret", "finess", "matricule")


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: the normalised value, or why the number was refused."""

    value: str | None
    problem: str | None = None  # "length", "prefix", "checksum", "not_digits"
    expected: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


def check(kind: str, digits: str) -> Verdict:
    """Check `digits` as an identifier of `kind` (one of CHECKS)."""
    if not digits.isdigit():
        return Verdict(None, "not_digits")
    return _CHECKERS[kind](digits)


def _rpps(digits: str) -> Verdict:
    # The national form is 8 followed by the 11-digit RPPS number (12 digits).
    if len(digits) == 12 and digits.startswith("8"):
        digits = digits[1:]
    if len(digits) != 11:
        return Verdict(None, "length", 11)
    if not digits.startswith("1"):
        return Verdict(None, "prefix", 11)
    if not luhn.is_valid(digits):
        return Verdict(None, "checksum", 11)
    return Verdict(digits)


def _siret(digits: str) -> Verdict:
    if len(digits) != 14:
        return Verdict(None, "length", 14)
    if not siret.is_valid(digits):
        return Verdict(None, "checksum", 14)
    return Verdict(digits)


def _finess(digits: str) -> Verdict:
    # FINESS numbers of Corsica start with 2A/2B and cannot be keyed: the agent takes those.
    if len(digits) != 9:
        return Verdict(None, "length", 9)
    return Verdict(digits)


def _matricule(digits: str) -> Verdict:
    if not 1 <= len(digits) <= 20:
        return Verdict(None, "length", 20)
    return Verdict(digits)


_CHECKERS = {"rpps": _rpps, "siret": _siret, "finess": _finess, "matricule": _matricule}


def mask(value: str | None, keep: int = 3) -> str:
    """Mask all but the last `keep` characters, for log lines."""
    if not value:
        return ""
    return "*" * max(len(value) - keep, 0) + value[-keep:]


def spoken_groups(digits: str, size: int = 3) -> str:
    """Digits spaced one by one, in groups separated by commas, for a clear read-back."""
    groups = [" ".join(digits[i : i + size]) for i in range(0, len(digits), size)]
    return ", ".join(groups)
