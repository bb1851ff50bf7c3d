"""Numbers and dates in French, written one way everywhere: the console, the commands, the CSV export.

Locale-free on purpose (a server's locale is rarely French, and `locale.setlocale` is process-wide):
« 2 300 », « 0,5 », « 54 % », « 06/12/2026 12:30 » (Paris time), « +4,2 points »."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def number(value: float, decimals: int = 0) -> str:
    """« 2 297 », « 12,5 »: a space between thousands, a comma before decimals."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", " ").replace(".", ",")


def about(count: float) -> str:
    """A rough count said as a person would: two significant figures (« 2 300 », « 480 », « 12 »)."""
    count = round(count)
    if count < 100:
        return number(count)
    digits = len(str(count)) - 2
    return number(round(count, -digits))


def percent(value: float | None) -> str:
    """A rate as « 54 % », or « — » when there is none."""
    return "—" if value is None else f"{value * 100:.0f} %"


def points(value: float, signed: bool = True) -> str:
    """A difference of rates in percentage points: « +4,2 points », « −0,4 point »; « moins de 0,1
    point » when it rounds to nothing (never « +0,0 points »)."""
    hundredths = round(value * 100, 1)
    if hundredths == 0:
        return "moins de 0,1 point"
    shown = number(abs(hundredths), 1)
    sign = ("+" if hundredths > 0 else "−") if signed else ("" if hundredths > 0 else "−")
    return f"{sign}{shown} point" + ("s" if abs(hundredths) >= 2 else "")


def moment(timestamp: float) -> str:
    """A Unix time as the date and time in Paris: « 06/12/2026 12:30 »."""
    return datetime.fromtimestamp(timestamp, PARIS).strftime("%d/%m/%Y %H:%M")


def day(value: date) -> str:
    """« 06/12/2026 »."""
    return value.strftime("%d/%m/%Y")


def spoken_address(address: str) -> str:
    """A web address as it is read aloud: « aide point exemple point fr, barre oblique code »."""
    words = {".": " point ", "/": ", barre oblique ", "-": " tiret ", "_": " tiret bas ", ":": " deux points "}
    return "".join(words.get(char, char) for char in address.removeprefix("https://").removeprefix("http://")).strip()
