"""Opening hours of the customer service: weekly hours in Paris time, French public holidays
(the `holidays` library) and exceptional closures, from a YAML file supervisors edit."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import holidays as holidays_library

from ..french import PARIS  # noqa: F401  (opening hours, and every time said or shown, are in Paris time)
from . import yamlfile
from .yamlfile import LineMap, Problem

DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Closure:
    first: date
    last: date
    reason: str = ""


@dataclass(frozen=True)
class Hours:
    """When agents answer. `always_open` when no hours are configured."""

    weekly: tuple[tuple[tuple[time, time], ...], ...] = ()  # Monday first
    closures: tuple[Closure, ...] = ()
    public_holidays: bool = True
    always_open: bool = False
    _holidays: object = field(default=None, compare=False, repr=False)

    def _closed_day(self, day: date) -> bool:
        if self.public_holidays and day in self._holidays:
            return True
        return any(closure.first <= day <= closure.last for closure in self.closures)

    def is_open(self, at: datetime) -> bool:
        """Whether an agent answers at `at` (any timezone; judged in Paris time)."""
        if self.always_open:
            return True
        local = at.astimezone(PARIS)
        if self._closed_day(local.date()):
            return False
        return any(start <= local.time() < end for start, end in self.weekly[local.weekday()])

    def next_opening(self, at: datetime) -> datetime | None:
        """The next moment the service opens after `at` (None if never within 60 days)."""
        local = at.astimezone(PARIS)
        for offset in range(61):
            day = local.date() + timedelta(days=offset)
            if self._closed_day(day):
                continue
            for start, _ in self.weekly[day.weekday()]:
                moment = datetime.combine(day, start, PARIS)
                if moment > local:
                    return moment
        return None

    def spoken_opening(self, at: datetime) -> str:
        """When it opens, as said on the phone: "aujourd'hui à 13 heures 30", "demain à 8 heures 30", "lundi 30 novembre à 8 heures 30"
        (« 8 h 30 » written is read badly by a voice)."""
        opening = self.next_opening(at)
        if opening is None:
            return "dès que possible"
        today = at.astimezone(PARIS).date()
        clock = f"{opening.hour} {'heure' if opening.hour <= 1 else 'heures'}" + (f" {opening.minute:02d}" if opening.minute else "")
        if opening.date() == today:
            return f"aujourd'hui à {clock}"
        if opening.date() == today + timedelta(days=1):
            return f"demain à {clock}"
        day = opening.date()
        return f"{DAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} à {clock}"


ALWAYS_OPEN = Hours(always_open=True)


def load(path: Path | str | None, always_open: bool = False, text: str | None = None) -> tuple[Hours | None, list[Problem]]:
    """The hours in `path` (or in `text`, read from it); always open when asked to or when no file is
    configured. A file that cannot be read is a problem, never « always open » in silence."""
    if always_open or not path:
        return ALWAYS_OPEN, []
    data, problems = yamlfile.load(path, text=text)
    name = str(path)
    if data is None:
        return None, problems
    if not isinstance(data, LineMap):
        return None, [Problem(name, 1, "le fichier doit contenir « semaine », « jours_feries » et « fermetures »")]
    for key in sorted(set(data) - {"semaine", "jours_feries", "fermetures"}, key=str):
        problems.append(Problem(name, data.line_of(key), f"rubrique inconnue « {key} » (possibles : semaine, jours_feries, fermetures)"))
    weekly = []
    week = data.get("semaine")
    if not isinstance(week, LineMap):
        problems.append(Problem(name, data.line_of("semaine"), "« semaine » doit donner les horaires de chaque jour, de lundi à dimanche"))
        week = LineMap()
    for key in sorted(set(week) - set(DAYS), key=str):
        problems.append(Problem(name, week.line_of(key), f"« {key} » n'est pas un jour (lundi … dimanche, sans majuscule)"))
    for day in DAYS:
        ranges = []
        given = week.get(day) or []
        if isinstance(given, str):  # `lundi: 08:30-18:00`: the most natural slip, one error that shows the form
            shown = f'["{given}"]' if _RANGE.match(given.strip()) else '["08:30-12:30", "13:30-18:00"]'
            problems.append(Problem(name, week.line_of(day), f"{day} : les plages s'écrivent entre crochets et guillemets : {day}: {shown} "
                                                             f"(une journée fermée : {day}: [])"))
            given = []
        elif not isinstance(given, list):
            problems.append(Problem(name, week.line_of(day), f'{day} : écrivez une liste de plages, ex. {day}: ["08:30-18:00"] (fermé : {day}: [])'))
            given = []
        for text in given:
            match = _RANGE.match(str(text))
            start = end = None
            if match:
                h1, m1, h2, m2 = map(int, match.groups())
                if h1 < 24 and h2 <= 24 and m1 < 60 and m2 < 60:
                    start, end = time(h1, m1), (time(h2, m2) if h2 < 24 else time.max)
            if start is None or end <= start:
                problems.append(Problem(name, week.line_of(day), f"{day} : « {text} » n'est pas une plage « HH:MM-HH:MM » (ex. 08:30-12:30)"))
            else:
                ranges.append((start, end))
        weekly.append(tuple(sorted(ranges)))
    public_holidays = data.get("jours_feries", True)
    if not isinstance(public_holidays, bool):
        problems.append(Problem(name, data.line_of("jours_feries"), "« jours_feries » vaut true (fermé les jours fériés) ou false"))
        public_holidays = True
    closures = []
    for item in data.get("fermetures") or []:
        if not isinstance(item, LineMap) or not isinstance(item.get("du"), date):
            problems.append(Problem(name, getattr(item, "line", data.line_of("fermetures")),
                                    "une fermeture s'écrit {du: AAAA-MM-JJ, au: AAAA-MM-JJ, motif: …}"))
            continue
        last = item.get("au", item["du"])
        if not isinstance(last, date) or last < item["du"]:
            problems.append(Problem(name, item.line, "« au » doit être une date AAAA-MM-JJ, après « du »"))
            continue
        closures.append(Closure(item["du"], last, str(item.get("motif", ""))))
    if any(p.severity == "error" for p in problems):
        return None, problems
    return Hours(tuple(weekly), tuple(closures), public_holidays, False, holidays_library.France()), problems


log = logging.getLogger(__name__)
KEPT_NAME = "horaires"  # the name the last accepted hours file is kept under (storage.kept_files)


class HoursFile:
    """The hours file in service, supervised like the flow and the prompts: reloaded when edited (by
    the server's watcher thread, or at a call at most every `interval` seconds when there is none),
    a broken edit refused with file, line and reason while the last good hours keep serving. The
    last hours accepted are kept (`kept`: storage.kept_files.KeptFiles) so that a server starting on
    a broken file starts on them, and says so (`problems`), rather than not at all."""

    def __init__(self, path: Path | str, interval: float = 2.0, kept=None):
        self.path = Path(path)
        self.interval = interval
        self.kept = kept
        self.watched = False
        self.problems: list[Problem] = []  # why the file in service is not the file on disk (empty: it is)
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._stamp = self._file_stamp()
        hours, problems, text = self._read()
        if hours is None:
            hours = self._last_good(problems)
            self._refused_stamp = self._stamp
        else:
            self._keep(text)
            self._refused_stamp = None
        self.hours: Hours = hours

    def current(self, now: float | None = None) -> Hours:
        import time as clock

        now = clock.monotonic() if now is None else now
        if not self.watched and now - self._checked_at >= self.interval:
            self._checked_at = now
            self.check()
        return self.hours

    def check(self) -> None:
        """Reload if the file changed since it was last read."""
        stamp = self._file_stamp()
        if stamp == self._stamp or stamp == self._refused_stamp:
            return
        with self._lock:
            hours, problems, text = self._read()
            if hours is None:
                self._refused_stamp = stamp
                self.problems = [p for p in problems if p.severity == "error"]
                log.error("edited opening hours refused, the last good ones keep serving:\n%s", "\n".join(map(str, self.problems)))
                return
            self._stamp, self._refused_stamp, self.problems, self.hours = stamp, None, [], hours
            self._keep(text)
            log.info("opening hours reloaded from %s", self.path)

    def _read(self) -> tuple[Hours | None, list[Problem], str | None]:
        text, problems = yamlfile.read(self.path)
        if text is None:
            return None, problems, None
        hours, problems = load(self.path, text=text)
        return hours, problems, text

    def _last_good(self, problems: list[Problem]) -> Hours:
        """At start on a broken file: the hours last accepted, kept in the database."""
        self.problems = [p for p in problems if p.severity == "error"]
        text = None
        if self.kept is not None:
            try:
                text = self.kept.get(KEPT_NAME)
            except Exception:  # the database is unreachable: no last good hours to fall back on
                log.exception("the last accepted opening hours cannot be read")
        hours = load(self.path, text=text)[0] if text is not None else None
        if hours is None:
            raise HoursError(self.problems)
        log.error("opening hours refused at start, serving the last ones accepted:\n%s", "\n".join(map(str, self.problems)))
        return hours

    def _keep(self, text: str | None) -> None:
        if self.kept is None or text is None:
            return
        try:
            self.kept.keep(KEPT_NAME, text)
        except Exception:  # kept at the next accepted load
            log.warning("the accepted opening hours could not be kept in the database")

    def _file_stamp(self) -> tuple | None:
        try:
            stat = self.path.stat()
            return (stat.st_mtime_ns, stat.st_size)
        except OSError:
            return None


class HoursError(Exception):
    """The hours file is refused and no earlier hours were ever accepted: `problems` says why."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
