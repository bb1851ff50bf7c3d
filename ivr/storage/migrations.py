"""The schema: numbered migrations that upgrade an existing database without losing data, written
once for SQLite and PostgreSQL (the column types that differ are filled in)."""

# Column types that differ between the two engines.
TYPES = {
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL"},
    "postgres": {"id": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION"},
}

# Each entry upgrades the schema by one version; never edit one that has shipped, add another.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        call_sid TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        expires_at {real} NOT NULL
    );
    CREATE INDEX sessions_expiry ON sessions (expires_at);
    CREATE TABLE calls (
        call_sid TEXT PRIMARY KEY,
        caller TEXT,
        started_at {real} NOT NULL,
        ended_at {real},
        duration_s INTEGER,
        call_status TEXT,
        outcome TEXT,
        outcome_step INTEGER,
        last_node TEXT,
        last_step INTEGER,
        transfer_reason TEXT,
        transfer_result TEXT,
        flow_version TEXT,
        context TEXT
    );
    CREATE INDEX calls_started ON calls (started_at);
    """,
    """
    CREATE TABLE outbox (
        id {id},
        idempotency_key TEXT NOT NULL UNIQUE,
        call_sid TEXT NOT NULL,
        url TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at {real} NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at {real} NOT NULL,
        locked_until {real} NOT NULL DEFAULT 0,
        delivered_at {real},
        failed_at {real},
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (delivered_at, failed_at, next_attempt_at);
    """,
    """
    CREATE TABLE events (
        id {id},
        call_sid TEXT NOT NULL,
        at {real} NOT NULL,
        node TEXT,
        step INTEGER,
        event TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX events_call ON events (call_sid, at);
    CREATE INDEX events_at ON events (at);
    ALTER TABLE calls ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0;
    """,
    """
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at {real} NOT NULL
    );
    CREATE TABLE prompt_overrides (
        key TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        updated_at {real} NOT NULL,
        updated_by TEXT NOT NULL
    );
    CREATE TABLE prompt_history (
        id {id},
        key TEXT NOT NULL,
        before TEXT,
        after TEXT NOT NULL,
        who TEXT NOT NULL,
        at {real} NOT NULL,
        action TEXT NOT NULL
    );
    CREATE TABLE revisions (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO revisions (name, value) VALUES ('prompts', 0);
    """,
    """
    ALTER TABLE sessions ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    """,
    """
    CREATE TABLE callbacks (
        id {id},
        call_sid TEXT NOT NULL UNIQUE,
        requested_at {real} NOT NULL,
        number TEXT NOT NULL,
        kind TEXT NOT NULL,
        message_url TEXT,
        context TEXT,
        status TEXT NOT NULL DEFAULT 'pending',
        done_at {real},
        done_by TEXT
    );
    CREATE INDEX callbacks_pending ON callbacks (status, requested_at);
    """,
    """
    CREATE TABLE sms (
        call_sid TEXT NOT NULL,
        guide TEXT NOT NULL,
        number TEXT NOT NULL,
        sent_at {real} NOT NULL,
        status TEXT NOT NULL,
        message_sid TEXT,
        PRIMARY KEY (call_sid, guide)
    );
    """,
    # Every webhook rewrites its call's session: an index on its expiry doubled the cost of that
    # write, for a purge that runs once every 500 saves (a scan of the calls in progress does).
    # No query reads events by time alone: that index only slowed every event written.
    """
    DROP INDEX sessions_expiry;
    DROP INDEX events_at;
    """,
    # The console's logins, kept on the server: logging out (or 12 hours) ends one for good, and
    # failed passwords are counted by account and by address.
    """
    CREATE TABLE console_logins (
        token TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        created_at {real} NOT NULL,
        seen_at {real} NOT NULL
    );
    CREATE TABLE login_failures (
        id {id},
        what TEXT NOT NULL,
        at {real} NOT NULL
    );
    CREATE INDEX login_failures_what ON login_failures (what, at);
    """,
    # Every version of the flow and prompts ever served, by its label: a call goes on with the
    # version it started on after a restart, or on another server.
    """
    CREATE TABLE flow_versions (
        version TEXT PRIMARY KEY,
        flow TEXT NOT NULL,
        prompts TEXT NOT NULL,
        overrides TEXT NOT NULL,
        created_at {real} NOT NULL
    );
    """,
    # Evidence for supervisors: incident announcements, sentence experiments (A/B), and what
    # callers thought of their call; each call says which incident and arms it had, and its rating.
    """
    CREATE TABLE incidents (
        id {id},
        text TEXT NOT NULL,
        until_at {real},
        set_by TEXT NOT NULL,
        set_at {real} NOT NULL,
        cleared_by TEXT,
        cleared_at {real}
    );
    CREATE TABLE experiments (
        id {id},
        key TEXT NOT NULL,
        text_b TEXT NOT NULL,
        share INTEGER NOT NULL,
        started_by TEXT NOT NULL,
        started_at {real} NOT NULL,
        stopped_by TEXT,
        stopped_at {real},
        kept TEXT
    );
    CREATE UNIQUE INDEX experiments_running ON experiments (key) WHERE stopped_at IS NULL;
    ALTER TABLE calls ADD COLUMN incident INTEGER;
    ALTER TABLE calls ADD COLUMN arms TEXT;
    ALTER TABLE calls ADD COLUMN rating INTEGER;
    ALTER TABLE calls ADD COLUMN rating_channel TEXT;
    ALTER TABLE calls ADD COLUMN rating_at {real};
    """,
    # Facts written twice change nothing (a statement sent before the database froze and its spooled
    # copy, a replay killed midway): each event is its call's history entry number `seq`; a record is
    # moved on only by a later state of its session (`progress_seq`, its history's length); the
    # fallback's transfer is kept beside it (`fallback_at`), and a transfer's result as it came
    # (`transfer_result_raw`: it counts once the call is known to have been put through). Facts that cannot be written while the
    # database answers are set aside with the reason, for `ivr journal`. Console logins are counted
    # per address, per address and account, and per account, each count taken in one statement.
    """
    ALTER TABLE events ADD COLUMN seq INTEGER;
    CREATE UNIQUE INDEX events_seq ON events (call_sid, seq);
    ALTER TABLE calls ADD COLUMN progress_seq INTEGER;
    ALTER TABLE calls ADD COLUMN fallback_at {real};
    ALTER TABLE calls ADD COLUMN transfer_result_raw TEXT;
    CREATE TABLE set_aside (
        id {id},
        call_sid TEXT,
        kind TEXT NOT NULL,
        line TEXT NOT NULL,
        reason TEXT NOT NULL,
        at {real} NOT NULL
    );
    CREATE INDEX set_aside_at ON set_aside (at);
    CREATE TABLE login_attempts (
        what TEXT PRIMARY KEY,
        since {real} NOT NULL,
        count INTEGER NOT NULL
    );
    """,
    # One truth for what callers hear (issue 34): a console change keeps the file's wording it
    # replaced (`file_text`), so that a later edit of that sentence in the file is seen and named;
    # an experiment keeps the wording A it started with, so that A changed during the test is seen;
    # the last hours file that was accepted is kept (`kept_files`), so that a broken edit never keeps
    # a server from starting: it starts on those and says « degraded ».
    """
    ALTER TABLE prompt_overrides ADD COLUMN file_text TEXT;
    ALTER TABLE experiments ADD COLUMN text_a TEXT;
    CREATE TABLE kept_files (
        name TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        at {real} NOT NULL
    );
    """,
    # Step 6 from the caller's own devices (issue 36): what a phone or a computer sent of itself
    # (system, browser, versions, public IP), kept like the answers and purged with them; the short
    # codes that tie a computer's page to its call, valid a few minutes.
    """
    CREATE TABLE device_facts (
        call_sid TEXT NOT NULL,
        kind TEXT NOT NULL,
        facts TEXT NOT NULL,
        at {real} NOT NULL,
        PRIMARY KEY (call_sid, kind)
    );
    CREATE INDEX device_facts_at ON device_facts (at);
    CREATE TABLE device_codes (
        code TEXT PRIMARY KEY,
        call_sid TEXT NOT NULL,
        created_at {real} NOT NULL,
        expires_at {real} NOT NULL
    );
    CREATE INDEX device_codes_call ON device_codes (call_sid);
    """,
)
