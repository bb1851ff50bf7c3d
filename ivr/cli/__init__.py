"""`ivr`: the supervisors' commands — check, hear, simulate and draw the call flow; accounts, figures,
sentences changed in the console, callback requests. Each module registers its commands on `main`."""

from . import data_commands, evidence_commands, flow_commands, journal_commands, parcours, simulate  # noqa: F401  (their commands join the group)
from .base import main

__all__ = ["main"]
