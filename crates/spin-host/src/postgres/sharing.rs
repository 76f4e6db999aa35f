//! Which statements may run on a shared connection. A guest's statements run on connections shared
//! with other requests, pipelined (the way PgBouncer's transaction pooling shares server connections),
//! until one of them needs the session to itself: a transaction, or anything that leaves state behind
//! in the server session (settings, prepared statements, cursors, temporary tables, `LISTEN`, session
//! advisory locks, sequence values read back with `currval`/`lastval`). From then on the guest's
//! connection is pinned to a connection of its own, as RDS Proxy pins a session. Anything this rule
//! does not recognise pins: a statement is shared only when it is known to be safe.
//!
//! A statement that could tell which backend runs it (`pg_backend_pid()`, the client port, the
//! per-backend statistics and views) pins too, before it runs. That keeps the guest's view exactly
//! the one backend Spin gives a guest connection: a shared connection carries no session state (only
//! statements that leave none run on one), so a statement that neither reads the backend's identity
//! nor depends on session state answers there what it would answer on the guest's own clean backend;
//! and from the first statement that could tell the difference on, the guest has one backend for
//! good.

/// Where a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sharing {
    /// A statement that stands alone: any connection will do, its effects are committed when it
    /// returns.
    Shared,
    /// `BEGIN`/`START TRANSACTION`: the session is needed until the transaction ends.
    Transaction,
    /// Leaves state in the session (or is not recognised): the session is needed for good.
    Session,
    /// Reveals which backend runs it (leaving nothing behind): from now on the guest keeps one backend,
    /// which may go back to the pool when the guest is done.
    Observes,
}

/// Statement kinds that stand alone.
const SHAREABLE: [&str; 7] = ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "TABLE"];

/// Functions whose effect outlives the statement in the session that called them.
const SESSION_FUNCTIONS: [&str; 12] = [
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    "set_config",
    "currval",
    "lastval",
    "setseed",
    "dblink_connect",
];

/// Functions and views that reveal which backend runs a statement: its process id, its client
/// address, its own statistics and session views (PostgreSQL 13-17's session information and
/// statistics functions).
const IDENTITY: [&str; 25] = [
    "pg_backend_pid",
    "inet_client_addr",
    "inet_client_port",
    "inet_server_addr",
    "inet_server_port",
    "pg_stat_activity",
    "pg_stat_get_activity",
    "pg_blocking_pids",
    "pg_safe_snapshot_blocking_pids",
    "pg_backend_memory_contexts",
    "pg_get_backend_memory_contexts",
    "pg_prepared_statements",
    "pg_cursors",
    "pg_stat_ssl",
    "pg_stat_gssapi",
    "pg_stat_xact_user_tables",
    "pg_stat_xact_all_tables",
    "pg_stat_xact_sys_tables",
    "pg_stat_xact_user_functions",
    "pg_my_temp_schema",
    "pg_current_xact_id_if_assigned",
    "txid_current_if_assigned",
    "pg_listening_channels",
    "pg_conf_load_time",
    "pg_stat_get_snapshot_timestamp",
];

/// Prefixes of function families that read one backend's own statistics.
const IDENTITY_PREFIXES: [&str; 2] = ["pg_stat_get_backend_", "pg_stat_get_xact_"];

impl Sharing {
    /// The rule for `statement`. It runs on every statement a guest sends, so it reads the text once
    /// and allocates nothing.
    pub(super) fn of(statement: &str) -> Sharing {
        let body = statement.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        let head = &body[..body.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(body.len())];
        if ["BEGIN", "START"].iter().any(|kind| head.eq_ignore_ascii_case(kind)) {
            Sharing::Transaction
        } else if SHAREABLE.iter().any(|kind| head.eq_ignore_ascii_case(kind)) && !calls_session_function(statement) {
            if reveals_backend(statement) {
                Sharing::Observes
            } else {
                Sharing::Shared
            }
        } else {
            Sharing::Session
        }
    }
}

/// The words of `statement` (letters, digits, `_`).
fn words(statement: &str) -> impl Iterator<Item = &[u8]> {
    let word_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    statement.as_bytes().split(move |b| !word_byte(b))
}

/// Whether `statement` names one of the session-scoped functions (as a word, in any case). It may
/// be a false alarm (a column of that name, a string): that only costs a connection of its own.
fn calls_session_function(statement: &str) -> bool {
    words(statement).any(|word| SESSION_FUNCTIONS.iter().any(|f| word.eq_ignore_ascii_case(f.as_bytes())))
}

/// Whether `statement` names a function or view that reveals its backend (as a word, in any case;
/// a false alarm costs a connection of its own for the rest of the guest's connection).
fn reveals_backend(statement: &str) -> bool {
    words(statement).any(|word| {
        IDENTITY.iter().any(|f| word.eq_ignore_ascii_case(f.as_bytes()))
            || IDENTITY_PREFIXES
                .iter()
                .any(|p| word.len() > p.len() && word[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::Sharing::{self, *};

    fn check(statement: &str, expected: Sharing) {
        assert_eq!(Sharing::of(statement), expected, "{statement}");
    }

    #[test]
    fn standalone_statements_are_shared() {
        check(
            "INSERT INTO token_jtis (jti, expires_at) VALUES ($1, to_timestamp($2)) ON CONFLICT (jti) DO NOTHING",
            Shared,
        );
        check("  select * from sessions where owner = $1", Shared);
        check("\n\tUPDATE pools SET load = $2 WHERE region = $1", Shared);
        check("DELETE FROM token_jtis WHERE jti IN (SELECT jti FROM token_jtis LIMIT 100)", Shared);
        check("WITH counted AS (INSERT INTO t VALUES (1)) SELECT 1", Shared);
        check("(SELECT 1) UNION (SELECT 2)", Shared);
        check("VALUES (1)", Shared);
        check("SELECT nextval('audit_log_id_seq')", Shared);
        check("SELECT pg_advisory_lock_count FROM stats", Shared);
        // Released when the statement's own transaction ends.
        check("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", Shared);
    }

    #[test]
    fn statements_that_reveal_their_backend_keep_one() {
        for statement in [
            "SELECT pg_backend_pid()",
            "select PG_BACKEND_PID()::int8",
            "INSERT INTO t (pid) VALUES (pg_backend_pid()) RETURNING pid",
            "SELECT inet_client_port()",
            "SELECT count(*) FROM pg_stat_activity WHERE pid = 1",
            "SELECT * FROM pg_prepared_statements",
            "SELECT pg_stat_get_backend_pid(1)",
            "SELECT pg_stat_get_xact_tuples_inserted(16384)",
            "WITH me AS (SELECT pg_my_temp_schema()) SELECT * FROM me",
        ] {
            check(statement, Observes);
        }
        // The aggregate statistics are the cluster's, whatever backend reads them.
        check("SELECT pg_stat_get_db_xact_commit(1)", Shared);
        check("SELECT * FROM pg_stat_database", Shared);
    }

    #[test]
    fn transactions_need_the_session_until_they_end() {
        check("BEGIN", Transaction);
        check("begin isolation level serializable", Transaction);
        check("START TRANSACTION", Transaction);
    }

    #[test]
    fn session_state_and_the_unknown_pin() {
        for statement in [
            "SET search_path = x",
            "set local statement_timeout = 5",
            "RESET ALL",
            "PREPARE p AS SELECT 1",
            "DEALLOCATE p",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "LISTEN jobs",
            "UNLISTEN *",
            "CREATE TEMP TABLE t (a int)",
            "DISCARD ALL",
            "LOCK TABLE t",
            "COPY t FROM STDIN",
            "COMMIT",
            "ROLLBACK",
            "SELECT pg_advisory_lock(1)",
            "SELECT pg_advisory_unlock_all()",
            "SELECT PG_TRY_ADVISORY_LOCK(1)",
            "select set_config('x.y', 'z', false)",
            "SELECT currval('s')",
            "SELECT lastval()",
            "INSERT INTO t VALUES (1) RETURNING lastval()",
            "",
            "-- a comment\nSELECT 1",
            "/* x */ SELECT 1",
        ] {
            check(statement, Session);
        }
    }
}
