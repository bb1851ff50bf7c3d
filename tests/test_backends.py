"""What matters with many servers: no lost write, expiry, one call across two instances, migrations."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import replace

import pytest
from conftest import POSTGRES_ADMIN, ROOT, TOKEN, WORKFLOW

from ivr.storage import db as db_module
from ivr.storage.db import MIGRATIONS, SQLite, connect
from ivr.storage.sessions import Conflict
from ivr.supervisor.simulator import Caller, FlaskTransport


def test_a_stale_save_is_a_conflict_not_a_lost_write(app, caller):
    store = app.extensions["ivr"].store
    call = caller()
    call.post("http://localhost/voice", call.params())
    first, second = store.load(call.call_sid), store.load(call.call_sid)
    store.save(replace(first, answers={"a": "1"}))
    with pytest.raises(Conflict):
        store.save(replace(second, answers={"b": "2"}))
    assert store.load(call.call_sid).answers == {"a": "1"}


def test_concurrent_webhooks_of_one_call_lose_nothing(app, caller):
    call = caller()
    call.post("http://localhost/voice", call.params())
    statuses = []

    def press_star():
        client_call = Caller(FlaskTransport(app.test_client()), "http://localhost", TOKEN, call_sid=call.call_sid)
        status, _ = client_call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", client_call.params(Digits="*"))
        statuses.append(status)

    # Eight requests racing: each can lose to the seven others at most, within RACE_RETRIES.
    threads = [threading.Thread(target=press_star) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    session = app.extensions["ivr"].store.load(call.call_sid)
    assert session.outcome is None  # nobody was transferred for a technical error
    assert [h["event"] for h in session.history].count("repeat") == 8
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="30"))
    assert len([e for e in app.extensions["ivr"].records.events(call.call_sid) if e["event"] == "repeat"]) == 8


def test_sessions_expire(app, caller, backend):
    store = app.extensions["ivr"].store
    call = caller()
    call.post("http://localhost/voice", call.params())
    if backend.get("REDIS_URL"):
        remaining = store.redis.ttl(store.key(call.call_sid))
        assert store.ttl - 5 <= remaining <= store.ttl
        store.redis.pexpire(store.key(call.call_sid), 1)
        deadline = time.monotonic() + 5
        while store.redis.exists(store.key(call.call_sid)) and time.monotonic() < deadline:
            pass  # Redis itself expires the key within a millisecond
    else:
        db = app.extensions["ivr"].db
        db.execute("UPDATE sessions SET expires_at = ? WHERE call_sid = ?", (time.time() - 1, call.call_sid))
        assert store.load(call.call_sid) is None
        # Deleted by the first save once the purge interval has passed, on a server taking calls.
        store._next_purge = time.time() - 1
        other = caller()
        other.post("http://localhost/voice", other.params())
        assert db.one("SELECT 1 AS found FROM sessions WHERE call_sid = ?", (call.call_sid,)) is None
    assert store.load(call.call_sid) is None


@pytest.mark.only_backend("redis+postgres", "the kept connection and the compare-and-set script are the Redis store's")
def test_redis_sessions_survive_a_dropped_connection_and_a_forgotten_script(app, caller, backend):
    store = app.extensions["ivr"].store
    call = caller()
    call.post("http://localhost/voice", call.params())
    session = store.load(call.call_sid)
    # Redis drops this thread's connection (a restart, an idle timeout): the next command reconnects.
    store.redis.client_kill_filter(_id=store.redis.client_id())
    session = session.evolve(answers={"a": "1"})
    session = session.evolve(revision=store.save(session))
    assert store.load(call.call_sid).answers == {"a": "1"}
    # Redis restarted empty of scripts: the compare-and-set script is loaded again.
    store.redis.script_flush()
    store.save(session.evolve(answers={"a": "2"}))
    assert store.load(call.call_sid).answers == {"a": "2"}
    with pytest.raises(Conflict):
        store.save(session.evolve(answers={"a": "3"}))  # still compare-and-set after the reload


class Alternating:
    """A transport that sends each webhook of a call to the next of several app instances."""

    def __init__(self, *apps):
        self.clients = [app.test_client() for app in apps]
        self.used = []

    def post(self, url, params, headers):
        index = len(self.used) % len(self.clients)
        self.used.append(index)
        response = self.clients[index].post(url, data=params, headers=headers)
        return response.status_code, response.get_data(as_text=True)


def test_one_call_across_two_instances_sharing_redis_and_postgres(make_app, shared_backend):
    first = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, **shared_backend)
    second = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, **shared_backend)
    transport = Alternating(first, second)
    call = Caller(transport, "http://localhost", TOKEN)
    result = call.call(["2", "2", "2", "1", "2", "1", "1", "1", "2", "1", "10012345673", "1", ".", "1", "1", "1", "2", "15", "1", "#", "1",
                        "11", "2", "2"])
    assert set(transport.used) == {0, 1}
    assert result.end == "enqueue"
    for app in (first, second):
        record = app.extensions["ivr"].records.get(call.call_sid)
        assert record["outcome"] == "transferred" and record["context"]["identifier"]["value"] == "10012345673"
        assert record["call_status"] == "completed"


# A database as the migrations of an early release built it (tests/fixtures, never regenerated): an
# upgrade starts from what shipped, so an edit of a shipped migration shows as a schema that differs
# from a new database's, or as a migration that fails.
SHIPPED = ROOT / "tests" / "fixtures"
OLD_CALL = "CAold0000000000000000000000000001"


def _sqlite_schema(database) -> dict:
    tables = [row["name"] for row in database.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    columns = {table: sorted((row["name"], row["type"], row["notnull"], row["dflt_value"], row["pk"])
                             for row in database.query(f"PRAGMA table_info({table})")) for table in tables}
    indexes = sorted((row["name"], row["tbl_name"], " ".join(row["sql"].split()))
                     for row in database.query("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
    return {"columns": columns, "indexes": indexes}


def test_a_sqlite_database_of_an_early_release_upgrades_to_todays_schema_and_keeps_its_data(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript((SHIPPED / "schema-5434382.sqlite.sql").read_text(encoding="utf-8"))
    conn.close()
    upgraded = SQLite(path)
    assert upgraded.one("PRAGMA user_version")["user_version"] == len(MIGRATIONS)
    assert _sqlite_schema(upgraded) == _sqlite_schema(SQLite(tmp_path / "new.sqlite3"))
    _assert_old_data_kept(upgraded)


def test_a_postgresql_database_of_an_early_release_upgrades_to_todays_schema_and_keeps_its_data(shared_backend):
    import psycopg

    url = shared_backend["DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in filter(str.strip, _without_comments(SHIPPED / "schema-5434382.postgres.sql").split(";\n")):
            conn.execute(statement)
        schema = conn.execute("SELECT current_schema() AS name").fetchone()[0]
    upgraded = connect(url, None)
    try:
        assert upgraded.one("SELECT version FROM schema_version")["version"] == len(MIGRATIONS)
        _assert_old_data_kept(upgraded)
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            fresh = "t_" + uuid.uuid4().hex[:12]
            conn.execute(f"CREATE SCHEMA {fresh}")
            try:
                new = connect(f"{url.split('?')[0]}?options=-csearch_path%3D{fresh}", None)
                new.migrate()
                new.forget_connection()
                assert _postgres_schema(conn, schema) == _postgres_schema(conn, fresh)
            finally:
                conn.execute(f"DROP SCHEMA {fresh} CASCADE")
    finally:
        upgraded.forget_connection()


def _without_comments(path) -> str:
    return "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("--")) + "\n"


def _postgres_schema(conn, schema: str) -> dict:
    columns = conn.execute("SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                           "WHERE table_schema = %s ORDER BY table_name, column_name", (schema,)).fetchall()
    indexes = conn.execute("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY indexname", (schema,)).fetchall()
    def unqualified(text):
        return text.replace(f"{schema}.", "") if text else text

    return {"columns": [(*row[:4], unqualified(row[4])) for row in columns],
            "indexes": [(table, name, unqualified(definition)) for table, name, definition in indexes]}


def _assert_old_data_kept(database) -> None:
    call = database.one("SELECT * FROM calls WHERE call_sid = ?", (OLD_CALL,))
    assert (call["outcome"], call["transfer_result"], call["simulated"]) == ("transferred", "bridged", 0)
    assert json.loads(call["context"])["summary_fr"] == "Appel ancien : é-C-P-S, « KO »."
    assert database.one("SELECT COUNT(*) AS n FROM calls")["n"] == 2
    assert [row["event"] for row in database.query("SELECT event FROM events WHERE call_sid = ?", (OLD_CALL,))] == ["answer"]
    assert database.one("SELECT delivered_at FROM outbox WHERE call_sid = ?", (OLD_CALL,))["delivered_at"] == 1764000301.0
    assert database.one("SELECT role FROM users WHERE username = 'nadia'")["role"] == "superviseur"
    assert database.one("SELECT text FROM prompt_overrides WHERE key = 'attente.message'")["text"].startswith("Merci de rester en ligne")


def test_postgres_reconnects_after_the_server_dropped_its_connection(shared_backend):
    import psycopg

    database = connect(shared_backend["DATABASE_URL"], None)
    pid = database.one("SELECT pg_backend_pid() AS pid")["pid"]
    with psycopg.connect(shared_backend["DATABASE_URL"], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # The kept connection was cut before this statement: it runs once more on a new connection.
    assert database.one("SELECT pg_backend_pid() AS pid")["pid"] != pid
    assert database.query("SELECT n FROM generate_series(1, 3) AS n") == [{"n": 1}, {"n": 2}, {"n": 3}]
    database.forget_connection()


def test_bad_database_url_is_refused(tmp_path):
    with pytest.raises(ValueError, match="postgresql://"):
        connect("mysql://x", tmp_path)
    assert isinstance(connect("", tmp_path), db_module.SQLite)
    assert isinstance(connect(f"sqlite:///{tmp_path}/other.sqlite3", tmp_path), db_module.SQLite)
    for scheme in ("postgresql", "postgres"):  # built without connecting: a server down does not stop the start
        assert isinstance(connect(f"{scheme}://nobody@127.0.0.1:1/none", tmp_path), db_module.Postgres)


def test_a_call_timeline_is_recorded_whole_and_in_order(app, caller):
    """Events reach the records at the call's start and end, with their details, in their order."""
    call = caller()
    call.call(["2", "2", "2", "1", "1", "4"])  # up to date, not Android 15, test KO, log out and in: solved; rated 4
    records = app.extensions["ivr"].records
    events = records.events(call.call_sid)
    assert [(e["node"], e["step"], e["event"]) for e in events] == [
        ("accueil", None, "enter"),
        ("etape1_a_jour", 1, "enter"), ("etape1_a_jour", 1, "answer"),
        ("etape1_android", 1, "enter"), ("etape1_android", 1, "answer"),
        ("etape3_test", 3, "enter"), ("etape3_test", 3, "answer"),
        ("etape4_deconnexion", 4, "enter"), ("etape4_deconnexion", 4, "answer"),
        ("etape4_resolu", 4, "enter"), ("etape4_resolu", 4, "answer"),
        ("fin_resolu", 4, "enter"), ("note_resolu", 4, "enter"), ("note_resolu", 4, "rating"),
        ("fin_resolu_au_revoir", 4, "enter"), ("fin_resolu_au_revoir", 4, "end"),
    ]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert events[2]["detail"] == {"key": "2", "field": "application_a_jour", "answer": "oui"}
    assert events[8]["detail"] == {"key": "1"} and events[0]["detail"] == {}
    assert events[-1]["detail"] == {"outcome": "solved"}
    assert all(isinstance(e["at"], float) for e in events)
    record = records.get(call.call_sid)
    assert (record["outcome"], record["outcome_step"], record["last_node"]) == ("solved", 4, "fin_resolu_au_revoir")
    assert record["call_status"] == "completed"
    assert (record["rating"], record["rating_channel"]) == (4, "voice")


def test_sqlite_is_shared_by_threads_and_reopened_after_a_fork(tmp_path):
    import os

    database = SQLite(tmp_path / "shared.sqlite3")
    database.execute("CREATE TABLE t (n INTEGER)")
    errors = []

    def writer(first: int):
        try:
            for n in range(first, first + 50):
                with database.transaction():  # the other threads wait for the whole transaction
                    database.execute("INSERT INTO t (n) VALUES (?)", (n,))
                    assert database.one("SELECT n FROM t WHERE n = ?", (n,)) == {"n": n}
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i * 100,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and database.one("SELECT COUNT(*) AS c FROM t") == {"c": 200}
    parent_connection = database.connection()
    child = os.fork()
    if child == 0:  # the child must open its own connection and see the parent's rows
        ok = database.connection() is not parent_connection and database.one("SELECT COUNT(*) AS c FROM t") == {"c": 200}
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert database.one("SELECT COUNT(*) AS c FROM t") == {"c": 200}  # the parent's connection still works


def test_sqlite_statements_of_many_threads_each_get_their_own_rows(tmp_path):
    """Every statement runs on the connection's one kept cursor: each reader must still get whole
    rows of its own query, after a statement that failed and after the connection was dropped."""
    database = SQLite(tmp_path / "kept.sqlite3")
    database.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, square INTEGER)")
    database.executemany("INSERT INTO t (n, square) VALUES (?, ?)", [(n, n * n) for n in range(300)])
    with pytest.raises(sqlite3.IntegrityError):
        database.execute("INSERT INTO t (n, square) VALUES (1, 1)")
    database.forget_connection()
    errors = []

    def reader(offset: int):
        try:
            for _ in range(30):
                rows = database.query("SELECT n, square FROM t WHERE n >= ? ORDER BY n", (offset,))
                assert rows == [{"n": n, "square": n * n} for n in range(offset, 300)]
                assert database.one("SELECT square FROM t WHERE n = ?", (offset + 1,)) == {"square": (offset + 1) ** 2}
                assert database.execute("UPDATE t SET square = square WHERE n < ?", (offset,)) == offset
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=reader, args=(offset,)) for offset in (0, 7, 150, 298)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_the_session_goes_when_the_call_ends_and_a_repeated_status_changes_nothing(app, caller):
    """The status callback writes the call's last events and discards its session; Twilio sending it
    again (a retry) finds nothing more to write."""
    store, records = app.extensions["ivr"].store, app.extensions["ivr"].records
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    for _ in range(2):
        call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="30"))
        assert store.load(call.call_sid) is None
        assert [e["event"] for e in records.events(call.call_sid)] == ["enter", "enter", "answer", "enter"]


def test_a_call_over_stays_over_even_for_a_forced_save(app, caller):
    """A request still running when the status callback came (a hold turn, a transfer result) saves
    with force: the call stays over, on either store, instead of coming back to life."""
    store = app.extensions["ivr"].store
    call = caller()
    call.post("http://localhost/voice", call.params())
    session = store.load(call.call_sid)
    assert store.save(session, force=True) == store.load(call.call_sid).revision == session.revision + 1  # the revision now stored
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="5"))
    if hasattr(store, "db"):  # SQL: the mark keeps nothing the caller said (the call's record has it)
        assert store.db.one("SELECT data, revision FROM sessions WHERE call_sid = ?", (call.call_sid,)) == {"data": "", "revision": -1}
    with pytest.raises(Conflict):
        store.save(session.evolve(answers={"a": "1"}), force=True)
    assert store.load(call.call_sid) is None
    assert store.take(call.call_sid) is None  # and a second end finds nothing to close again


def test_a_session_taken_at_the_end_of_the_call_cannot_be_saved_back(app, caller):
    store = app.extensions["ivr"].store
    call = caller()
    call.post("http://localhost/voice", call.params())
    taken = store.take(call.call_sid)
    assert taken is not None and taken.call_sid == call.call_sid
    with pytest.raises(Conflict):
        store.save(taken.evolve(answers={"a": "1"}))
    assert store.load(call.call_sid) is None


def test_a_call_hung_up_mid_way_is_recorded_at_the_status_callback(app, caller):
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="42"))
    records = app.extensions["ivr"].records
    record = records.get(call.call_sid)
    assert (record["outcome"], record["last_node"], record["duration_s"]) == ("hung_up", "etape1_android", 42)
    assert [e["event"] for e in records.events(call.call_sid)] == ["enter", "enter", "answer", "enter"]
    assert app.extensions["ivr"].store.load(call.call_sid) is None


def test_a_session_is_one_json_document_and_the_former_layout_still_loads(app, caller):
    """A session is stored as one JSON document; calls in progress during an upgrade were saved by
    the release before with their history on a second line, and go on."""
    import orjson

    from ivr.storage.sessions import decode, encode

    store = app.extensions["ivr"].store
    call = caller()
    call.post("http://localhost/voice", call.params())
    session = store.load(call.call_sid)
    assert orjson.loads(encode(session))["history"] == list(session.history)
    assert decode(encode(session), session.revision) == session
    head = orjson.dumps({**session.to_dict(), "history": len(session.history)})
    former = head + b"\n" + orjson.dumps(list(session.history))
    assert decode(former, session.revision) == session
