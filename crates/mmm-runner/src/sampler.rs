//! CPU and memory of each agent's running command, sampled about once a second from `/proc`.
//!
//! Every command runs in its own process group (the command's pid is the group id), so an
//! agent's usage is the sum over the processes of that group: the shell, what it started,
//! and their children. CPU% is the growth of the group's user + system time between two
//! samples over the wall time between them (100% = one core busy). A process that leaves the
//! group (`setsid`) is not counted.

use std::collections::HashMap;
use std::time::Instant;

use mmm_core::tracker::Tracker;

/// Usage of one process group at one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
struct GroupUsage {
    /// User + system CPU time of the group's live processes, clock ticks.
    ticks: u64,
    /// Resident memory, bytes.
    rss_bytes: u64,
}

/// The sampler's memory between samples.
pub(super) struct Sampler {
    ticks_per_second: f64,
    page_size: u64,
    /// Each group's CPU ticks at the last sample, and when it was taken.
    last: HashMap<u32, (u64, Instant)>,
}

impl Sampler {
    pub(super) fn new() -> Self {
        use nix::unistd::{SysconfVar, sysconf};
        let ticks = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
        let page = sysconf(SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096);
        Sampler {
            ticks_per_second: ticks.max(1) as f64,
            page_size: page.max(1) as u64,
            last: HashMap::new(),
        }
    }

    /// Samples the agents' commands and records their usage in the tracker. CPU% needs two
    /// samples of a group, so a command shows it from its second sample on.
    pub(super) fn sample(&mut self, tracker: &Tracker) {
        let groups: Vec<u32> = tracker.command_processes();
        if groups.iter().all(|pid| *pid == 0) {
            self.last.clear();
            return;
        }
        let usage = read_groups(&groups, self.page_size);
        let now = Instant::now();
        let mut next = HashMap::new();
        for (agent, pgid) in groups.iter().enumerate() {
            let Some(group) = usage.get(pgid).copied() else {
                continue;
            };
            if let Some((ticks, at)) = self.last.get(pgid) {
                let seconds = now.duration_since(*at).as_secs_f64();
                if seconds > 0.0 {
                    let used = group.ticks.saturating_sub(*ticks) as f64 / self.ticks_per_second;
                    tracker.command_usage(agent, (used / seconds * 100.0) as f32, group.rss_bytes);
                }
            }
            next.insert(*pgid, (group.ticks, now));
        }
        self.last = next;
    }
}

/// Sums `/proc/PID/stat` over the processes of each group in `groups`.
fn read_groups(groups: &[u32], page_size: u64) -> HashMap<u32, GroupUsage> {
    let mut usage: HashMap<u32, GroupUsage> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return usage;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // Processes end between the listing and the read: skip what is gone.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((pgrp, ticks, rss_pages)) = parse_stat(&stat) else {
            continue;
        };
        if pgrp != 0 && groups.contains(&pgrp) {
            let group = usage.entry(pgrp).or_insert(GroupUsage {
                ticks: 0,
                rss_bytes: 0,
            });
            group.ticks += ticks;
            group.rss_bytes += rss_pages * page_size;
        }
    }
    usage
}

/// The process group, user + system ticks and resident pages from a `/proc/PID/stat` line.
/// The command name (field 2) is in parentheses and may hold spaces or parentheses itself,
/// so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u64, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) ... utime(14) stime(15) ... rss(24).
    let pgrp = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let rss: i64 = fields.get(21)?.parse().ok()?;
    Some((pgrp, utime + stime, rss.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_command_names() {
        let line = "4242 (my (odd) cmd) S 1 4240 4240 0 -1 4194304 100 0 0 0 \
                    70 30 0 0 20 0 1 0 12345 10000000 250 18446744073709551615";
        assert_eq!(parse_stat(line), Some((4240, 100, 250)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn a_busy_process_group_shows_cpu_and_memory() {
        // A shell spinning in its own process group, as the executor starts commands.
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "while :; do :; done"])
            .process_group(0)
            .spawn()
            .unwrap();
        let tracker = Tracker::new(1, 1);
        tracker.command_process(0, Some(child.id()));
        let mut sampler = Sampler::new();
        sampler.sample(&tracker);
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let seen = loop {
            std::thread::sleep(std::time::Duration::from_millis(300));
            sampler.sample(&tracker);
            let agent = tracker.agent(0);
            if agent.cpu_percent.is_some_and(|c| c > 20.0) || Instant::now() > deadline {
                break agent;
            }
        };
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen.cpu_percent.is_some_and(|c| c > 20.0), "{seen:?}");
        assert!(seen.rss_bytes.is_some_and(|r| r > 100 * 1024), "{seen:?}");
    }
}
