"""The spool file: writes kept in order, replayed once, what still fails kept for the next try."""

from __future__ import annotations

import json

from ivr.storage.spool import Spool


def test_writes_are_replayed_in_order_once_and_what_fails_waits(tmp_path):
    spool = Spool(tmp_path / "spool.jsonl")
    for number in range(4):
        spool.add("write", {"n": number, "text": "é\n"})
    assert len(spool) == 4
    done, fail_at = [], {2}

    def write(args):
        if args["n"] in fail_at:
            raise ConnectionError("database down")
        done.append(args["n"])

    assert spool.replay({"write": write}) == (2, 2)
    assert done == [0, 1] and len(spool) == 2
    fail_at.clear()
    assert spool.replay({"write": write}) == (2, 0)
    assert done == [0, 1, 2, 3] and len(spool) == 0 and spool.replay({"write": write}) == (0, 0)


def test_the_spool_is_readable_by_the_server_user_only_and_one_json_line_a_write(tmp_path):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.add("close", {"call_sid": "CA1"})
    assert (tmp_path / "spool.jsonl").stat().st_mode & 0o777 == 0o600
    assert json.loads((tmp_path / "spool.jsonl").read_text(encoding="utf-8")) == {"kind": "close", "args": {"call_sid": "CA1"}}
