//! A real terminal for tests: a tmux server of the test's own, one session, keys sent and the
//! screen read back. The server is killed when the value is dropped.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One tmux session on a server of its own (`tmux -L NAME`).
pub(crate) struct Tmux {
    server: String,
}

impl Tmux {
    /// Starts `command` (run by `sh -c`) in a detached 100x30 session named `name`, in `dir`,
    /// with `MMM_STORE` unset. tmux must be installed (`./scripts/test` installs it).
    pub(crate) fn start(name: &str, dir: &std::path::Path, command: &str) -> Tmux {
        Tmux::start_sized(name, dir, command, 100, 30)
    }

    /// [`Tmux::start`] in a terminal of `width` x `height`.
    pub(crate) fn start_sized(
        name: &str,
        dir: &std::path::Path,
        command: &str,
        width: u16,
        height: u16,
    ) -> Tmux {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok(),
            "tmux is not installed: apt-get install -y tmux (./scripts/test installs it)"
        );
        let tmux = Tmux {
            server: format!("mmm-{name}-{}", std::process::id()),
        };
        let (width, height) = (width.to_string(), height.to_string());
        let started = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "test",
            "-x",
            &width,
            "-y",
            &height,
            "-c",
            &dir.to_string_lossy(),
            "env",
            "-u",
            "MMM_STORE",
            "sh",
            "-c",
            command,
        ]);
        assert!(started.status.success(), "{started:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.server])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Types `keys` (tmux key names, e.g. `Tab`, `Enter`, or literal text).
    pub(crate) fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "test"];
        args.extend_from_slice(keys);
        let sent = self.run(&args);
        assert!(sent.status.success(), "{sent:?}");
    }

    /// What the screen shows now.
    pub(crate) fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "test"]).stdout)
            .into_owned()
    }

    /// Waits until the screen satisfies `condition`, failing with the screen after `within`.
    pub(crate) fn wait_for_screen(
        &self,
        within: Duration,
        what: &str,
        mut condition: impl FnMut(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen();
            if condition(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while the session's command has not ended.
    pub(crate) fn is_running(&self) -> bool {
        self.run(&["has-session", "-t", "test"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
