"""Seconds of speech a caller hears before reaching an agent (before joining the queue), on the main
paths, at the supervisors' lint rate (14 characters a second): the time the IVR takes on the phone,
whatever the server's speed. What is asked while queued does not count: an agent may answer anytime.

    python bench/speech.py
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.supervisor.lint import spoken_seconds  # noqa: E402
from ivr.supervisor.simulator import Caller, FlaskTransport  # noqa: E402

RPPS = "10012345673"
IDENTIFIER = ["1", RPPS, "1", ".", "1", "1"]  # RPPS, confirmed, no card, reproducible, happening now
DEVICE = ["1", "2", "15"]  # phone, Android 15 (known already on the Android path: not asked)
REST = ["1", "#", "1", "11", "2", "2"]  # Chrome, Windows 11, no LPS, no message
PATHS = {
    "main (steps 1, 3, 4, 5, 6)": ["2", "2", "2", "1", "2", "1", "1", "1", "2", *IDENTIFIER, *DEVICE, *REST],
    "Android (steps 1 to 6)": ["2", "1", "1", "1", "1", "1", "1", "2", "2", "1", "2", "1", "1", "1", "2", *IDENTIFIER, *REST],
}


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("DATABASE_URL", None)
    from ivr import create_app

    print(f"{'path':32} {'SMS':>4} {'before the agent':>17} {'from « Étape 6 »':>17}")
    for sms in (True, False):  # with SMS configured the guides are offered (« tapez 8 »): a little longer
        with tempfile.TemporaryDirectory(prefix="ivr-speech-") as data_dir:
            app = create_app({"TWILIO_AUTH_TOKEN": "bench", "IVR_DATA_DIR": data_dir, "IVR_ALWAYS_OPEN": "1", "TWILIO_WORKFLOW_SID": "WW" + "0" * 32,
                              "TWILIO_ACCOUNT_SID": "AC" + "0" * 32 if sms else "", "IVR_SMS_FROM": "+33700000000" if sms else ""})
            for index, (name, keys) in enumerate(PATHS.items()):
                # A simulated call's id (CAtry…): an SMS would be heard as sent, never sent.
                caller = Caller(FlaskTransport(app.test_client()), "http://localhost", "bench", call_sid=f"CAtry{index:029d}")
                result = caller.call(keys)
                assert result.end == "enqueue", f"{name}: ended by {result.end}"
                before = result.said[: result.said_before_queue or len(result.said)]  # what is said in the queue does not count
                seconds = [spoken_seconds(text) for text in before]
                step6 = next(index for index, text in enumerate(result.said) if text.startswith("Étape 6"))
                print(f"{name:32} {'oui' if sms else 'non':>4} {sum(seconds):>15.0f} s {sum(seconds[step6:]):>15.0f} s")
            app.extensions["ivr"].stop()
            app.extensions["ivr"].db.forget_connection()

if __name__ == "__main__":
    main()
