//! The process table, read from `/proc`: which live processes name a run's folder or a file
//! in it on their command line (`python train.py --config logs/exp1/config.json`).
//!
//! Why `/proc` and not `sysinfo`: all we need is each process's arguments and working folder,
//! which `/proc/PID/cmdline` and `/proc/PID/cwd` give directly; sysinfo would also sample
//! memory and CPU for every process and adds a dependency. On a system without `/proc` the
//! table is empty, so runs are never `stuck`, only `failed`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Live processes, indexed by every folder their arguments name or lie in.
#[derive(Debug, Clone, Default)]
pub struct ProcessTable {
    by_path: HashMap<PathBuf, Vec<u32>>,
}

/// One process: its id, working folder (when readable) and arguments (without the program).
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// The process id.
    pub pid: u32,
    /// Its working folder, to resolve relative arguments.
    pub cwd: Option<PathBuf>,
    /// Its arguments after the program name.
    pub args: Vec<OsString>,
}

impl ProcessTable {
    /// An empty table: no process names any run.
    pub fn empty() -> ProcessTable {
        ProcessTable::default()
    }

    /// Reads `/proc`, leaving out this process itself.
    pub fn read() -> ProcessTable {
        let own = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return ProcessTable::empty();
        };
        let processes = entries.flatten().filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            if pid == own {
                return None;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let mut parts = cmdline.split(|&b| b == 0).filter(|p| !p.is_empty());
            parts.next()?; // the program
            let args: Vec<OsString> = parts.map(|p| OsString::from_vec(p.to_vec())).collect();
            if args.is_empty() {
                return None;
            }
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok();
            Some(ProcessInfo { pid, cwd, args })
        });
        ProcessTable::from_processes(processes)
    }

    /// A table of the given processes. An argument names a path when it is absolute, or is
    /// relative and exists under the process's working folder; `--flag=PATH` counts too.
    pub fn from_processes(processes: impl IntoIterator<Item = ProcessInfo>) -> ProcessTable {
        let mut by_path: HashMap<PathBuf, Vec<u32>> = HashMap::new();
        for process in processes {
            for arg in &process.args {
                let bytes = arg.as_bytes();
                let value = match bytes.iter().position(|&b| b == b'=') {
                    Some(i) if bytes.starts_with(b"-") => &bytes[i + 1..],
                    _ => bytes,
                };
                if value.is_empty() {
                    continue;
                }
                let value = Path::new(std::ffi::OsStr::from_bytes(value));
                let path = if value.is_absolute() {
                    normalise(value)
                } else {
                    match &process.cwd {
                        Some(cwd) if cwd.join(value).symlink_metadata().is_ok() => {
                            normalise(&cwd.join(value))
                        }
                        _ => continue,
                    }
                };
                for ancestor in path.ancestors() {
                    let pids = by_path.entry(ancestor.to_path_buf()).or_default();
                    if pids.last() != Some(&process.pid) {
                        pids.push(process.pid);
                    }
                }
            }
        }
        for pids in by_path.values_mut() {
            pids.sort_unstable();
            pids.dedup();
        }
        ProcessTable { by_path }
    }

    /// The processes naming `folder` (absolute) or a path inside it.
    pub fn pids_for(&self, folder: &Path) -> Vec<u32> {
        self.by_path.get(folder).cloned().unwrap_or_default()
    }
}

/// `a/./b/../c` as `a/c`, without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, cwd: Option<&Path>, args: &[&str]) -> ProcessInfo {
        ProcessInfo {
            pid,
            cwd: cwd.map(Path::to_path_buf),
            args: args.iter().map(OsString::from).collect(),
        }
    }

    #[test]
    fn absolute_arguments_and_flag_values_name_folders() {
        let table = ProcessTable::from_processes([
            process(
                10,
                None,
                &["train.py", "--config", "/logs/exp1/config.json"],
            ),
            process(11, None, &["--work-dir=/logs/exp2/"]),
            process(12, None, &["/logs/exp3/../exp4/./config.json"]),
        ]);
        assert_eq!(table.pids_for(Path::new("/logs/exp1")), [10]);
        assert_eq!(table.pids_for(Path::new("/logs/exp2")), [11]);
        assert_eq!(table.pids_for(Path::new("/logs/exp4")), [12]);
        assert!(table.pids_for(Path::new("/logs/exp3")).is_empty());
        assert_eq!(table.pids_for(Path::new("/logs")), [10, 11, 12]);
        // A sibling whose name starts the same is not named.
        assert!(table.pids_for(Path::new("/logs/exp")).is_empty());
    }

    #[test]
    fn relative_arguments_count_only_when_they_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        std::fs::write(dir.path().join("run/config.json"), "{}").unwrap();
        let table = ProcessTable::from_processes([
            process(20, Some(dir.path()), &["run/config.json"]),
            process(21, Some(&dir.path().join("run")), &["30"]),
        ]);
        assert_eq!(table.pids_for(&dir.path().join("run")), [20]);
    }

    #[test]
    fn the_real_table_finds_a_child_process() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("run").join("config.json");
        std::fs::create_dir(dir.path().join("run")).unwrap();
        std::fs::write(&marker, "{}").unwrap();
        // `sh -c 'sleep 60; :' sh PATH` keeps PATH on its command line and never touches the
        // file; the `; :` stops the shell from exec-ing `sleep` in its place. Its output goes
        // nowhere, so a closed or full stdout cannot end it early.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 60; :", "sh"])
            .arg(&marker)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sh starts");
        // Read the table until the child shows up (or a generous deadline passes): on a loaded
        // machine the first read may come before the kernel shows the new command line.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            let table = ProcessTable::read();
            if table
                .pids_for(&dir.path().join("run"))
                .contains(&child.id())
            {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let _ = child.kill();
        child.wait().unwrap();
        assert!(
            found,
            "child {} not found naming {}",
            child.id(),
            marker.display()
        );
    }
}
