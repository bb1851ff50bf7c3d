"""gunicorn's settings for the web process (the Procfile's `web` line; gunicorn reads this file from
the directory it starts in). Command-line options win over these.

Metrics (issue 37): every worker counts into files of PROMETHEUS_MULTIPROC_DIR (prometheus_client's
multiprocess mode), which /metrics sums whichever worker answers. The variable must be set before a
worker imports prometheus_client: it is set here, in the master, before anything else. Unset, each
gunicorn gets a directory of its own, emptied at start and removed at exit; set, it is emptied at
start (files of a previous run would be summed in). https://prometheus.github.io/client_python/multiprocess/

Logs: with IVR_LOG_FORMAT=json, gunicorn's own lines are JSON too, and its access log is off (the
application writes one JSON line a request, with the call's CallSid, which gunicorn cannot know)."""

import os
import shutil
import tempfile

_given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_metrics_dir = _given or tempfile.mkdtemp(prefix="ivr-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 4
# gunicorn 27's control socket lives at one path in $HOME: two servers of one host (a blue/green
# switch, the benchmarks' two) would take each other's; nothing of ours uses it.
control_socket_disable = True

if os.environ.get("IVR_LOG_FORMAT") == "json":
    accesslog = None
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "ivr.logs.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {"gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False}},
        "root": {"handlers": ["console"], "level": "INFO"},
    }
else:
    accesslog = "-"


def on_starting(server):
    """A clean metrics directory: nothing of a previous run summed in. Only prometheus_client's own
    files are removed (a directory given by mistake, IVR_DATA_DIR say, keeps everything else)."""
    os.makedirs(_metrics_dir, mode=0o700, exist_ok=True)
    for name in os.listdir(_metrics_dir):
        if name.endswith(".db") and name.split("_", 1)[0] in ("counter", "gauge", "histogram", "summary"):
            os.remove(os.path.join(_metrics_dir, name))


def child_exit(server, worker):
    """A worker gone (restarted, killed): its live gauges no longer count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server):
    if not _given:  # the directory made for this run
        shutil.rmtree(_metrics_dir, ignore_errors=True)
