from __future__ import annotations

import pytest
from conftest import VALID_RPPS, VALID_SIRET

from ivr.call.identifiers import check, spoken_groups


@pytest.mark.parametrize(
    ("kind", "digits", "value", "problem"),
    [
        ("rpps", VALID_RPPS, VALID_RPPS, None),
        ("rpps", "8" + VALID_RPPS, VALID_RPPS, None),
        ("rpps", "9" + VALID_RPPS, None, "length"),
        ("rpps", "1001234567", None, "length"),
        ("rpps", "20012345673", None, "prefix"),
        ("rpps", "10012345674", None, "checksum"),
        ("rpps", "1001234567*", None, "not_digits"),
        ("siret", VALID_SIRET, VALID_SIRET, None),
        ("siret", "73282932000075", None, "checksum"),
        ("siret", "7328293200007", None, "length"),
        ("finess", "750000001", "750000001", None),
        ("finess", "75000000", None, "length"),
        ("matricule", "42", "42", None),
        ("matricule", "1" * 21, None, "length"),
        ("carte", "2100012345", "2100012345", None),
        ("carte", "123", None, "length"),
        ("version", "07", "7", None),
        ("version", "15", "15", None),
        ("version", "150", None, "length"),
        ("version", "0", None, "length"),
    ],
)
def test_check(kind, digits, value, problem):
    verdict = check(kind, digits)
    assert (verdict.value, verdict.problem) == (value, problem)


def test_spoken_groups():
    assert spoken_groups("10012345673") == "1 0 0, 1 2 3, 4 5 6, 7 3"
