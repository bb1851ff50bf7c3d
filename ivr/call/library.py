"""The flow and prompts in service: checked on load, reloaded when edited, old versions kept for calls
in progress. A file that fails validation is refused and the last good version keeps serving."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from . import flow_loader
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

    @property
    def version(self) -> str:
        return self.flow.version


def load_bundle(flow_path: Path | str, prompts_dir: Path | str, language: str = "fr-FR",
                overrides: dict[str, str] | None = None) -> tuple[Bundle | None, list[Problem]]:
    """Parse and check both files (with the console's overrides); the bundle (None on any error)
    and every problem found."""
    catalogue, problems = prompts_module.parse(prompts_dir, language, overrides)
    if catalogue is None:
        return None, problems
    extra = json.dumps(overrides or {}, sort_keys=True, ensure_ascii=False).encode() if overrides else b""
    flow, flow_problems = flow_loader.parse(flow_path, catalogue, extra)
    return (Bundle(flow, catalogue) if flow is not None else None), [*problems, *flow_problems]


class FlowLibrary:
    """Serves the current bundle, looks for edits at most every `interval` seconds."""

    def __init__(self, flow_path: Path | str, prompts_dir: Path | str, language: str = "fr-FR",
                 interval: float = 2.0, keep: int = 20, overrides=None):
        self.flow_path = Path(flow_path)
        self.prompts_path = prompts_module.path_for(prompts_dir, language)
        self.prompts_dir = Path(prompts_dir)
        self.language = language
        self.interval = interval
        self.keep = keep
        self.overrides = overrides  # PromptOverrides, or None
        self.overrides_missing = False  # the database was unreachable at the last load: console changes not applied
        self._lock = threading.Lock()
        self._versions: OrderedDict[str, Bundle] = OrderedDict()
        self._checked_at = 0.0
        self._stamp = self._file_stamp()
        self._refused_stamp: tuple | None = None
        bundle, problems = self.load()
        if bundle is None:
            errors = [p for p in problems if p.severity == "error"]
            raise FlowError(errors) if any(p.file == str(self.flow_path) for p in errors) else PromptsError(errors)
        self._publish(bundle)
        self.last_problems: list[Problem] = []

    @property
    def current_bundle(self) -> Bundle:
        return next(reversed(self._versions.values()))

    def current(self, now: float | None = None) -> Bundle:
        """The version new calls get (reloading first if the files changed)."""
        now = time.monotonic() if now is None else now
        if now - self._checked_at >= self.interval:
            self._checked_at = now
            stamp = self._file_stamp()
            if stamp != self._stamp and stamp != self._refused_stamp:
                self.reload(stamp)
        return self.current_bundle

    def get(self, version: str) -> Bundle:
        """The version a call started on, or the current one if it is no longer kept."""
        return self._versions.get(version) or self.current()

    def reload(self, stamp: tuple | None = None) -> list[Problem]:
        """Load the files now; publish them if valid. Returns the problems (empty when published)."""
        stamp = stamp or self._file_stamp()
        with self._lock:
            bundle, problems = self.load()
            if bundle is None:
                self._refused_stamp = stamp
                self.last_problems = [p for p in problems if p.severity == "error"]
                log.error("edited flow or prompts refused, still serving version %s:\n%s",
                          self.current_bundle.version, "\n".join(str(p) for p in self.last_problems))
                return self.last_problems
            self._stamp = stamp
            self._refused_stamp = None
            self.last_problems = []
            if self.overrides_missing:
                # Without the console's changes this would not be the wording supervisors published:
                # keep serving the current one until the database answers again.
                log.warning("console changes unreadable (database unreachable): still serving version %s", self.current_bundle.version)
                self._stamp = None
                return []
            if bundle.version != self.current_bundle.version:
                self._publish(bundle)
                log.info("flow and prompts reloaded: now serving version %s", bundle.version)
            return []

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
