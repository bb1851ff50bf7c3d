"""What gunicorn serves: `gunicorn ivr.wsgi:app` (see Procfile).

A server that cannot start (a setting missing or wrong, a flow or prompt file refused) says why in
French, in a few lines, and stops: gunicorn's exit code 4 ("app failed to load") ends the master
instead of restarting workers that would fail the same way, each with a long traceback."""

from __future__ import annotations

import sys

from . import create_app
from .call.flow import FlowError
from .call.prompts import PromptsError
from .web.services import ConfigurationError

try:
    app = create_app()
except (ConfigurationError, FlowError, PromptsError) as error:
    print(f"Le serveur vocal ne démarre pas : {error}", file=sys.stderr, flush=True)
    raise SystemExit(4) from None
