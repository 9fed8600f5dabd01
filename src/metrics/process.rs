//! The standard `process_*` families (as the Prometheus client libraries export them), read from
//! `/proc/self` at scrape time on the metrics thread: resident memory, open file descriptors, CPU
//! seconds and start time. Nothing is kept between scrapes. On a system without `/proc` (not
//! Linux) the families are left out.

use std::fmt::Write as _;

/// What one scrape reads from `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub resident_memory_bytes: u64,
    pub open_fds: u64,
    pub cpu_seconds: f64,
    /// Unix time the process started, in seconds.
    pub start_time_seconds: f64,
}

/// Parses `/proc/self/stat`'s fields after the command name: (utime, stime, starttime) in clock
/// ticks. The command name is in parentheses and may itself contain spaces and `)`, so the
/// fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<(u64, u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is index 0; utime is field 14, stime 15, starttime 22.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
    Some((get(14)?, get(15)?, get(22)?))
}

/// The `btime` line of `/proc/stat`: boot time, Unix seconds.
pub fn parse_btime(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Reads the process's figures; None where `/proc` is missing or unreadable.
pub fn read() -> Option<ProcessStats> {
    // SAFETY: sysconf only reads a system constant.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if ticks <= 0 || page <= 0 {
        return None;
    }
    let ticks = ticks as f64;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let (utime, stime, start) = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let btime = parse_btime(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(ProcessStats {
        resident_memory_bytes: resident_pages * page as u64,
        // The directory handle read_dir holds is one of the entries: not counted.
        open_fds: open_fds.saturating_sub(1),
        cpu_seconds: (utime + stime) as f64 / ticks,
        start_time_seconds: btime as f64 + start as f64 / ticks,
    })
}

/// Appends the `process_*` families to a scrape.
pub fn render(out: &mut String) {
    let Some(p) = read() else { return };
    let mut family = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        p.resident_memory_bytes.to_string(),
    );
    family(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        p.open_fds.to_string(),
    );
    family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        format!("{:.2}", p.cpu_seconds),
    );
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        format!("{:.2}", p.start_time_seconds),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_hostile_command_name() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 12345 1000 50";
        assert_eq!(parse_stat(stat), Some((7, 3, 12345)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn reads_this_process() {
        let p = read().expect("/proc is readable on Linux");
        assert!(p.resident_memory_bytes > 0 && p.open_fds >= 3, "{p:?}");
        assert!(p.start_time_seconds > 1.6e9, "{p:?}");
    }
}
