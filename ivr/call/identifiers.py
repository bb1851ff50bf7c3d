"""Checks of the identifiers a caller keys in: RPPS, SIRET, FINESS, matricule."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from stdnum import luhn
from stdnum.fr import siret

CHECKS = ("rpps", "siret", "finess", "matricule", "carte", "version", "telephone")
IDENTIFIERS = frozenset({"rpps", "siret", "finess", "matricule"})  # who the caller is: the agent asks for one not given


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: the normalised value, or why the number was refused."""

    value: str | None
    problem: str | None = None  # "length", "prefix", "checksum", "corsica", "not_digits"
    expected: str = ""  # how many digits were expected, as said aloud ("11", "1 ou 2")

    @property
    def ok(self) -> bool:
        return self.problem is None


def is_ascii_digits(text: str) -> bool:
    """Only 0 to 9 (str.isdigit also takes "²" and Arabic-Indic digits, which no keypad sends)."""
    return text.isascii() and text.isdigit()


def check(kind: str, digits: str) -> Verdict:
    """Check `digits` as an identifier of `kind` (one of CHECKS)."""
    if not is_ascii_digits(digits):
        return Verdict(None, "not_digits")
    return _CHECKERS[kind](digits)


def _rpps(digits: str) -> Verdict:
    # The national form is 8 followed by the 11-digit RPPS number (12 digits).
    if len(digits) == 12 and digits.startswith("8"):
        digits = digits[1:]
    if len(digits) != 11:
        return Verdict(None, "length", "11")
    if not digits.startswith("1"):
        return Verdict(None, "prefix", "11")
    if not luhn.is_valid(digits):
        return Verdict(None, "checksum", "11")
    return Verdict(digits)


def _siret(digits: str) -> Verdict:
    if len(digits) != 14:
        return Verdict(None, "length", "14")
    if not siret.is_valid(digits):
        return Verdict(None, "checksum", "14")
    return Verdict(digits)


# FINESS numbers of Corsica start with 2A or 2B, which a keypad cannot send: the caller keys 2 0 1
# for 2A and 2 0 2 for 2B (20 is no département any more, so nothing else starts so).
CORSICA = {"201": "2A", "202": "2B"}


def _finess(digits: str) -> Verdict:
    if len(digits) == 10 and digits[:3] in CORSICA:
        return Verdict(CORSICA[digits[:3]] + digits[3:])
    if digits.startswith("20") and len(digits) in (9, 10):
        return Verdict(None, "corsica", "9")
    if len(digits) != 9:
        return Verdict(None, "length", "9")
    return Verdict(digits)


def _between(low: int, high: int):
    def checker(digits: str) -> Verdict:
        if not low <= len(digits) <= high:
            return Verdict(None, "length", f"de {low} à {high}" if high > low + 1 else f"{low} ou {high}")
        return Verdict(digits)

    return checker


def _version(digits: str) -> Verdict:
    # A major version of iOS, Android, Windows or macOS: 1 to 2 digits, leading zeros dropped.
    if not 1 <= len(digits) <= 2 or int(digits) == 0:
        return Verdict(None, "length", "1 ou 2")
    return Verdict(str(int(digits)))


def _telephone(digits: str) -> Verdict:
    # A French number as keyed: 10 digits starting with 0; kept in E.164 (+33…).
    import phonenumbers

    if len(digits) != 10 or not digits.startswith("0"):
        return Verdict(None, "length", "10")
    # Mainland France, or an overseas department (0692… Réunion, 0690… Guadeloupe…), dialled alike.
    for region in ("FR", "RE", "GP", "MQ", "GF", "YT", "PM", "BL", "MF"):
        number = phonenumbers.parse(digits, region)
        if phonenumbers.is_valid_number(number):
            return Verdict(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return Verdict(None, "checksum", "10")


def spoken_phone(number: str) -> str:
    """A number said in pairs, as people say them: "06 12 34 56 78" (French overseas too: "06 92…");
    a foreign one with its country, as it must be dialled from France: "plus 44, 79 11 12 34 56"."""
    national = "0" + number[3:] if number.startswith("+33") and len(number) == 12 else number
    if number.startswith("+") and not number.startswith("+33"):
        try:
            parsed = phonenumbers.parse(number)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None and phonenumbers.region_code_for_number(parsed) in FRENCH_REGIONS:
            national = "".join(c for c in phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL) if c.isdigit())
        elif parsed is not None:
            digits = str(parsed.national_number)
            head = len(digits) % 2
            groups = ([digits[:head]] if head else []) + [digits[i : i + 2] for i in range(head, len(digits), 2)]
            return f"plus {parsed.country_code}, " + " ".join(groups)
    if len(national) == 10 and is_ascii_digits(national):
        return " ".join(national[i : i + 2] for i in range(0, 10, 2))
    return " ".join(national)


_CHECKERS = {
    "rpps": _rpps,
    "siret": _siret,
    "finess": _finess,
    "matricule": _between(1, 20),
    # The card number printed on a CPS/CPE card; lenient, the agent sees what was keyed.
    "carte": _between(4, 20),
    "version": _version,
    "telephone": _telephone,
}


def masked(text: str) -> str:
    """`text` with every number of 3 digits or more hidden but its last 2 (for logs and kept events)."""
    return re.sub(r"\d{3,}", lambda match: "•" * (len(match.group()) - 2) + match.group()[-2:], text)


def spoken_groups(digits: str, size: int = 3) -> str:
    """Digits spaced one by one, in groups separated by commas, for a clear read-back."""
    groups = [" ".join(digits[i : i + size]) for i in range(0, len(digits), size)]
    return ", ".join(groups)


# A caller's number an SMS reaches: a French mobile (the `fixe` condition of the flow's variants is
# its opposite; the SMS guides are sent only to those). Mobiles of France and of its overseas
# departments and territories.
FRENCH_REGIONS = frozenset({"FR", "RE", "GP", "MQ", "GF", "YT", "PM", "BL", "MF"})
MOBILE_TYPES = frozenset({phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE})


def can_receive(number: str) -> bool:
    """Whether `number` is a French mobile (an SMS would reach it)."""
    try:
        parsed = phonenumbers.parse(number, "FR")
    except phonenumbers.NumberParseException:
        return False
    return (phonenumbers.is_valid_number(parsed) and phonenumbers.region_code_for_number(parsed) in FRENCH_REGIONS
            and phonenumbers.number_type(parsed) in MOBILE_TYPES)
