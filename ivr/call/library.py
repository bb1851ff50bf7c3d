"""The flow and prompts in service: checked on load, reloaded when edited, old versions kept for calls
in progress. A file that fails validation is refused and the last good version keeps serving."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from .. import metrics
from . import checks, flow_loader, yamlfile
from . import prompts as prompts_module
from .flow import Flow, FlowError
from .prompts import Prompts, PromptsError
from .yamlfile import Problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bundle:
    """One published version: a flow and the sentences it speaks."""

    flow: Flow
    prompts: Prompts
    sources: Sources | None = None  # the texts it was made of (kept so that every server can load it again)

    @property
    def version(self) -> str:
        return self.flow.version


@dataclass(frozen=True)
class Sources:
    """The exact texts a version is made of: the flow file, the prompt file, the console's changes."""

    flow: str
    prompts: str
    overrides: str  # JSON, keys sorted ("" when there are none)

    @property
    def version(self) -> str:
        """The version's label: a digest of these very texts."""
        digest = hashlib.sha256()
        for text in (self.flow, self.prompts, self.overrides):
            digest.update(text.encode("utf-8"))
        return digest.hexdigest()[:12]


def load_bundle(flow_path: Path | str, prompts_dir: Path | str, language: str = "fr-FR",
                overrides: dict[str, str] | None = None, partial: bool = False) -> tuple[Bundle | None, list[Problem]]:
    """Read both files once, parse and check them (with the console's overrides); the bundle (None
    on any error, unless `partial`) and every problem found."""
    flow_text, problems = yamlfile.read(flow_path)
    prompts_text, more = yamlfile.read(prompts_module.path_for(prompts_dir, language))
    if flow_text is None or prompts_text is None:
        return None, [*problems, *more]
    changes = json.dumps(overrides, sort_keys=True, ensure_ascii=False) if overrides else ""
    return bundle_of(Sources(flow_text, prompts_text, changes), flow_path, prompts_dir, language, partial)


def bundle_of(sources: Sources, flow_path: Path | str, prompts_dir: Path | str, language: str = "fr-FR",
              partial: bool = False) -> tuple[Bundle | None, list[Problem]]:
    """The bundle those texts make (problems named after the files they came from): None on any
    error, one that would break a call (`checks.breaking`) as much as one of YAML. Every file is
    checked whatever the other holds, so that one run lists every problem. With `partial`, what
    could be read is returned even with errors (for `ivr validate`'s style warnings; never served)."""
    overrides = json.loads(sources.overrides) if sources.overrides else None
    catalogue, problems = prompts_module.parse_all(prompts_dir, language, overrides, text=sources.prompts)
    if catalogue is None:
        return None, problems
    flow, flow_problems = flow_loader.parse(flow_path, catalogue, text=sources.flow, version=sources.version, partial=True)
    problems = [*problems, *flow_problems]
    if flow is not None:
        try:
            problems += checks.breaking(flow, catalogue)
        except Exception:  # a flow read in part may be too broken to look at further: its errors say why
            if not any(p.severity == "error" for p in problems):
                raise
    if overrides:  # the file must stand on its own: a console change withdrawn would otherwise uncover its error
        problems += [problem for problem in _file_alone_errors(sources, flow_path, prompts_dir, language, overrides) if problem not in problems]
    if flow is None or (any(p.severity == "error" for p in problems) and not partial):
        return None, problems
    return Bundle(flow, catalogue, sources), problems


def _file_alone_errors(sources: Sources, flow_path, prompts_dir, language: str, overrides: dict) -> list[Problem]:
    """The errors of the files without the console's changes: one hidden today under a change of
    the console would break calls the day that change is withdrawn (a rollback, « Reprendre le texte
    du fichier »), or a server restart."""
    _, problems = bundle_of(Sources(sources.flow, sources.prompts, ""), flow_path, prompts_dir, language)
    found = []
    for problem in problems:
        if problem.severity != "error":
            continue
        hidden = [key for key in overrides if f"« {key} »" in problem.message]
        if hidden:
            problem = Problem(problem.file, problem.line, f"{problem.message} (dans le texte du fichier, que la modification de la console "
                                                          f"de « {hidden[0]} » cache aujourd'hui : il serait entendu si elle était retirée)")
        found.append(problem)
    return found


class FlowLibrary:
    """Serves the current bundle, looks for edits at most every `interval` seconds."""

    def __init__(self, flow_path: Path | str, prompts_dir: Path | str, language: str = "fr-FR",
                 interval: float = 2.0, keep: int = 20, overrides=None, archive=None):
        self.flow_path = Path(flow_path)
        self.prompts_path = prompts_module.path_for(prompts_dir, language)
        self.prompts_dir = Path(prompts_dir)
        self.language = language
        self.interval = interval
        self.keep = keep
        self.overrides = overrides  # PromptOverrides, or None
        self.archive = archive  # VersionArchive, or None: where every server finds a version again
        self._archived: OrderedDict[str, Bundle] = OrderedDict()  # versions loaded back from the archive
        self.overrides_missing = False  # the database was unreachable at the last load: console changes not applied
        self.watched = False  # a thread of the server calls check() every `interval`: calls never do
        self._lock = threading.Lock()
        self._versions: OrderedDict[str, Bundle] = OrderedDict()
        self._checked_at = 0.0
        self._stamp = self._file_stamp()
        self._refused_stamp: tuple | None = None
        self._file_prompts: tuple[str, Prompts | None] | None = None
        self.last_problems: list[Problem] = []
        bundle, problems = self.load()
        if bundle is None:
            errors = [p for p in problems if p.severity == "error"]
            bundle = self._last_published(errors)
            if bundle is None:
                raise FlowError(errors) if any(p.file == str(self.flow_path) for p in errors) else PromptsError(errors)
            self._refused_stamp, self.last_problems = self._stamp, errors
        self._publish(bundle)
        self._warn_shadowed_since_changed(bundle)

    @property
    def current_bundle(self) -> Bundle:
        return next(reversed(self._versions.values()))

    def current(self, now: float | None = None) -> Bundle:
        """The version new calls get (reloading first if the files changed, unless a thread of the
        server looks for edits: `watched`; then no call waits for a reload or the database)."""
        now = time.monotonic() if now is None else now
        if not self.watched and now - self._checked_at >= self.interval:
            self._checked_at = now
            self.check()
        return self.current_bundle

    def file_prompts(self) -> Prompts | None:
        """The sentences of the prompt file in service, without the console's changes (the base the
        console's changes replace; cached for the text it was read from)."""
        sources = self.current_bundle.sources
        if sources is None:
            return None
        cached = self._file_prompts
        if cached is None or cached[0] is not sources.prompts:
            catalogue, _ = prompts_module.parse(self.prompts_dir, self.language, text=sources.prompts)
            cached = self._file_prompts = (sources.prompts, catalogue)
        return cached[1]

    def check(self) -> None:
        """Reload if the files or the console's changes moved since the last load."""
        stamp = self._file_stamp()
        if stamp != self._stamp and stamp != self._refused_stamp:
            self.reload(stamp)

    def get(self, version: str) -> Bundle:
        """The version a call started on (from memory, or loaded back from the archive: a restart,
        another server), or the current one if it cannot be had."""
        bundle = self._versions.get(version) or self._archived.get(version)
        if bundle is None and self.archive is not None:
            bundle = self._load_archived(version)
        return bundle or self.current()

    def _load_archived(self, version: str) -> Bundle | None:
        try:
            sources = self.archive.get(version)
        except Exception:
            log.exception("version %s cannot be read from the archive: the call goes on with the current one", version)
            return None
        if sources is None:
            return None
        bundle, problems = bundle_of(sources, self.flow_path, self.prompts_dir, self.language)
        if bundle is None or bundle.version != version:
            log.error("archived version %s does not load again: %s", version, "; ".join(map(str, problems)))
            return None
        with self._lock:
            self._archived[version] = bundle
            while len(self._archived) > self.keep:
                self._archived.popitem(last=False)
        return bundle

    def reload(self, stamp: tuple | None = None) -> list[Problem]:
        """Load the files now; publish them if valid. Returns the problems (empty when published)."""
        stamp = stamp or self._file_stamp()
        with self._lock:
            bundle, problems = self.load()
            if bundle is None:
                self._refused_stamp = stamp
                self.last_problems = [p for p in problems if p.severity == "error"]
                metrics.RELOADS.labels("refused").inc()
                metrics.FILES_REFUSED.set(1)
                log.error("edited flow or prompts refused, still serving version %s:\n%s",
                          self.current_bundle.version, "\n".join(str(p) for p in self.last_problems))
                return self.last_problems
            self._stamp = stamp
            self._refused_stamp = None
            self.last_problems = []
            metrics.FILES_REFUSED.set(0)
            if self.overrides_missing:
                # Without the console's changes this would not be the wording supervisors published:
                # keep serving the current one until the database answers again.
                log.warning("console changes unreadable (database unreachable): still serving version %s", self.current_bundle.version)
                self._stamp = None
                return []
            if bundle.version != self.current_bundle.version:
                self._warn_shadowed(self.current_bundle, bundle)
                self._publish(bundle)
                metrics.RELOADS.labels("accepted").inc()
                log.info("flow and prompts reloaded: now serving version %s", bundle.version)
            return []

    def _last_published(self, errors: list[Problem]) -> Bundle | None:
        """At start on files an edit broke: the version last published by any server (the archive),
        rather than no line at all; None when there is none."""
        if self.archive is None:
            return None
        try:
            found = self.archive.latest()
        except Exception:  # the database is unreachable: nothing to fall back on
            log.exception("the last published version cannot be read from the archive")
            return None
        if found is None:
            return None
        bundle, _ = bundle_of(found, self.flow_path, self.prompts_dir, self.language)
        if bundle is not None:
            log.error("flow or prompts refused at start, serving the version last published (%s):\n%s", bundle.version,
                      "\n".join(str(p) for p in errors))
        return bundle

    def _warn_shadowed(self, before: Bundle, after: Bundle) -> None:
        """A sentence edited in the file while the console has its own wording: callers keep hearing
        the console's; say so, or the supervisor who edited the file will wonder why nothing changed."""
        if before.sources is None or after.sources is None or not after.sources.overrides or before.sources.prompts == after.sources.prompts:
            return
        console = json.loads(after.sources.overrides)
        old, _ = prompts_module.parse(self.prompts_dir, self.language, text=before.sources.prompts)
        new, _ = prompts_module.parse(self.prompts_dir, self.language, text=after.sources.prompts)
        if old is None or new is None:
            return
        for key in sorted(console):
            was, now = old.entries.get(key), new.entries.get(key)
            if was is not None and now is not None and was.text != now.text:
                log.warning("%s:%d: « %s » edited in the file, but callers still hear the console's change of this sentence: "
                            "roll it back in the console, or bring it into the file with « ivr prompts export --write --clear »",
                            self.prompts_path, now.line, key)

    def _warn_shadowed_since_changed(self, bundle: Bundle) -> None:
        """At start: a sentence of the file edited since the console changed it (the rule of
        `prompts.edited_in_file`, as the supervisors' tools say it): callers do not hear that edit."""
        if self.overrides is None or bundle.sources is None or not bundle.sources.overrides:
            return
        try:
            file_only = self.file_prompts()
            for row in self.overrides.rows():
                entry = file_only.entries.get(row["key"]) if file_only else None
                if entry is not None and prompts_module.edited_in_file(row.get("file_text"), entry.text, row["text"]):
                    log.warning("%s:%d: « %s » was edited in the file after the console changed it: callers hear the console's "
                                "wording (« ivr prompts reset %s », or « Reprendre le texte du fichier » in the console)",
                                self.prompts_path, entry.line, row["key"], row["key"])
        except Exception:  # a warning is not worth a failed start
            log.exception("console changes could not be compared with the file")

    def load(self, extra: dict[str, str] | None = None) -> tuple[Bundle | None, list[Problem]]:
        """Parse the files with the overrides (and `extra` changes on top) without publishing."""
        saved: dict[str, str] = {}
        self.overrides_missing = False
        if self.overrides is not None:
            try:
                saved = self.overrides.all()
            except Exception:
                log.exception("the console's sentence changes cannot be read (database unreachable)")
                self.overrides_missing = True
        return load_bundle(self.flow_path, self.prompts_dir, self.language, {**saved, **(extra or {})})

    def _publish(self, bundle: Bundle) -> None:
        if self.archive is not None and bundle.sources is not None:
            try:
                self.archive.keep(bundle.version, bundle.sources)
            except Exception:  # kept in this process all the same; archived at the next publish
                log.exception("version %s could not be archived (database unreachable)", bundle.version)
        self._versions.pop(bundle.version, None)
        self._versions[bundle.version] = bundle
        while len(self._versions) > self.keep:
            self._versions.popitem(last=False)

    def _file_stamp(self) -> tuple:
        try:
            stamps: list = [self.overrides.revision() if self.overrides else 0]
        except Exception:  # the database is unreachable: looked at again at the next interval
            stamps = [None]
        for path in (self.flow_path, self.prompts_path):
            try:
                stat = path.stat()
                stamps.append((stat.st_mtime_ns, stat.st_size))
            except OSError:
                stamps.append(None)
        return tuple(stamps)
