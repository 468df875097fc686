//! Facts about the machine and the server under test: cores, memory, database version, git
//! commit, and the server process's resident memory (Linux `/proc`).

use std::path::Path;

use serde_json::{json, Value};

/// `MemTotal` of /proc/meminfo in MiB.
pub fn memory_mb() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    number_field(&meminfo, "MemTotal:").map(|kib| kib / 1024.0)
}

/// The number of a `Name:   1234 kB` line (in the line's unit, if it has one).
fn number_field(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The resident set size of process `pid` in MiB (`VmRSS`).
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    number_field(&status, "VmRSS:").map(|kib| kib / 1024.0)
}

/// CPU seconds (user + system, all threads) process `pid` has used: fields 14 and 15 of
/// `/proc/<pid>/stat`, in clock ticks of 1/100 s (`USER_HZ`, 100 on Linux's mainstream
/// architectures).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_ticks(&stat).map(|ticks| ticks as f64 / 100.0)
}

/// utime + stime of a `/proc/<pid>/stat` line (fields after the parenthesised command name,
/// which may itself hold spaces and parentheses).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // Field 3 (state) is the first after the name: utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Context switches (voluntary and not) of all threads of process `pid` so far, from
/// `/proc/<pid>/task/*/status`: most are a thread waiting for or handing work to another (a
/// database connection's thread, a runtime worker), the cost that dominates a send on SQLite.
/// Threads that exited are not counted.
pub fn context_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0.0;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for field in ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"] {
            total += number_field(&status, field).unwrap_or(0.0);
        }
    }
    Some(total as u64)
}

/// The inode of the socket listening on TCP `port`, from /proc/net/tcp{,6} text.
fn listening_inode(table: &str, port: u16) -> Option<u64> {
    let wanted = format!("{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields.get(1)?.rsplit(':').next()?;
        // State 0A is LISTEN.
        (local_port == wanted && *fields.get(3)? == "0A").then(|| fields.get(9)?.parse().ok())?
    })
}

/// The process listening on TCP `port` (the first with the socket among its open files).
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|table| listening_inode(&table, port))?;
    let target = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()))
        {
            return Some(pid);
        }
    }
    None
}

/// The commit checked out in `dir` (with `-dirty` when the tree has changes).
pub fn git_commit(dir: &Path) -> Option<String> {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// The database's own version string.
pub async fn database_version(url: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let version: String = sqlx::query_scalar("show server_version")
            .fetch_one(&mut conn)
            .await?;
        Ok(format!("PostgreSQL {version}"))
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        let version: String = sqlx::query_scalar("select sqlite_version()")
            .fetch_one(&mut conn)
            .await?;
        Ok(format!("SQLite {version}"))
    }
}

/// Postgres with autovacuum off (as on some test hosts) never gathers planner statistics, so
/// prepared statements keep the generic plans of empty tables (e.g. every identity of the app
/// scanned to find three). A production database has autovacuum on; to measure that, this runs
/// `analyze` when autovacuum is off. Returns whether autovacuum is on (`None` on SQLite).
pub async fn analyze_if_no_autovacuum(url: &str) -> anyhow::Result<Option<bool>> {
    use sqlx::Connection;
    if !url.starts_with("postgres") {
        return Ok(None);
    }
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let autovacuum: String = sqlx::query_scalar("show autovacuum")
        .fetch_one(&mut conn)
        .await?;
    let on = autovacuum == "on";
    if !on {
        sqlx::query("analyze").execute(&mut conn).await?;
    }
    Ok(Some(on))
}

/// The machine facts of the report.
pub fn machine(backend: &str, database: &str, commit: Option<String>) -> Value {
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_mb": memory_mb(),
        "os": std::env::consts::OS,
        "backend": backend,
        "database": database,
        "git_commit": commit,
        "bench_profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 515151 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   108        0 31337 1 0000000000000000 100 0 0 10 0";

    #[test]
    fn finds_the_listening_socket_of_a_port() {
        assert_eq!(listening_inode(TCP, 8080), Some(424242));
        assert_eq!(listening_inode(TCP, 5432), Some(31337));
        assert_eq!(
            listening_inode(TCP, 53488),
            None,
            "an established socket is no listener"
        );
        assert_eq!(listening_inode("", 8080), None);
    }

    #[test]
    fn reads_number_fields() {
        let status = "Name:\tlayer-server\nVmPeak:\t  200000 kB\nVmRSS:\t   51200 kB\n";
        assert_eq!(number_field(status, "VmRSS:"), Some(51200.0));
        assert_eq!(number_field(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_cpu_ticks_past_a_command_name_with_spaces() {
        let stat =
            "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 9 0 100";
        assert_eq!(cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        assert!(rss_mb(std::process::id()).is_some_and(|mb| mb > 0.0));
        assert!(cpu_secs(std::process::id()).is_some());
        assert!(context_switches(std::process::id()).is_some_and(|n| n > 0));
    }
}
