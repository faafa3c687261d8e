//! A throwaway PostgreSQL database for the store's own tests.

/// `WAMETER_TEST_POSTGRES`, or `None` with a note when it is not set (a
/// failure in CI, which must set it: see `.ci/run`). `what` names the
/// skipped test in the note.
pub(crate) fn server_url(what: &str) -> Option<String> {
    match std::env::var("WAMETER_TEST_POSTGRES") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none() && std::env::var_os("WAMETER_TEST_ALL").is_none(),
                "scripts/test.sh must set WAMETER_TEST_POSTGRES"
            );
            eprintln!(
                "WAMETER_TEST_POSTGRES is not set: PostgreSQL {what} test skipped (scripts/postgres-for-tests.sh starts one)"
            );
            None
        }
    }
}

/// Drops and creates `database` on the server at `url`; its URL.
pub(crate) async fn fresh_database(url: &str, database: &str) -> String {
    let (admin, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    for sql in [
        format!("DROP DATABASE IF EXISTS {database}"),
        format!("CREATE DATABASE {database}"),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{database}")
}
