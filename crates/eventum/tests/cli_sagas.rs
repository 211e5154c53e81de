//! `eventum sagas list|show` against `eventum serve`: the commands reach the saga
//! endpoints, print JSON lines, and fail with the server's error for a missing instance.

mod common;

use common::*;

#[test]
fn sagas_commands_query_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "127.0.0.1:0");
    let listed = ok_lines(&server.run(&["sagas", "list", "jobs", "--limit", "5"]));
    assert!(listed.is_empty(), "no instances yet: {listed:?}");
    let missing = server.run(&["sagas", "show", "jobs", "nope"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("not_found"),
        "{}",
        stderr(&missing)
    );
    let bad = server.run(&["sagas", "list", "jobs", "--limit", "0"]);
    assert!(!bad.status.success(), "a limit of 0 is refused");
    server.stop();
}
