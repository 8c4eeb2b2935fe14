//! What the shell around mmm gets: completion scripts that load in bash and zsh and complete
//! subcommands and job ids at a real Tab (in tmux), and manual pages that `man` renders.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::Workspace;
use crate::tmux::Tmux;

/// The folder of the binary under test, to put on the shell's PATH.
fn bin_dir() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mmm"))
        .parent()
        .expect("the binary is in a folder")
}

/// A workspace whose store holds one finished job; returns it with the job's full id.
fn workspace_with_a_job() -> (Workspace, String) {
    let ws = Workspace::new();
    ws.run(&["run", "--progress", "none", "--", "true", ":::", "a"])
        .success();
    let id = ws.only_job().id.to_string();
    (ws, id)
}

/// Loads `mmm completions SHELL` in an interactive `shell` inside tmux, then checks that Tab
/// completes a subcommand and a job id.
fn tab_completes(shell: &str, start: &str, load: &str) {
    let (ws, id) = workspace_with_a_job();
    let command = format!("PATH='{}':\"$PATH\" exec {start}", bin_dir().display());
    let tmux = Tmux::start(shell, ws.path(), &command);
    tmux.send(&[load, "Enter"]);
    tmux.send(&["mmm pro", "Tab"]);
    tmux.wait_for_screen(
        Duration::from_secs(10),
        &format!("{shell} to complete `mmm pro` to `mmm progress`"),
        |screen| screen.contains("mmm progress"),
    );
    tmux.send(&["C-u"]);
    // The first characters of the id, then Tab: the store's only job completes.
    tmux.send(&[&format!("clear; mmm events {}", &id[..6]), "Tab"]);
    tmux.wait_for_screen(
        Duration::from_secs(10),
        &format!("{shell} to complete the job id {id}"),
        |screen| screen.contains(&format!("mmm events {id}")),
    );
    tmux.send(&["Enter"]);
    // The completed line runs: the job's events are printed.
    tmux.wait_for_screen(
        Duration::from_secs(10),
        "the completed command to run",
        |screen| screen.contains("job_finished"),
    );
}

#[test]
fn bash_completes_subcommands_and_job_ids() {
    tab_completes(
        "bash",
        "bash --norc --noprofile",
        "source <(mmm completions bash)",
    );
}

#[test]
fn zsh_completes_subcommands_and_job_ids() {
    assert!(
        Command::new("zsh").arg("--version").output().is_ok(),
        "zsh is not installed: apt-get install -y zsh (./scripts/test installs it)"
    );
    tab_completes(
        "zsh",
        "zsh -f",
        "autoload -Uz compinit && compinit -u && source <(mmm completions zsh)",
    );
}

#[test]
fn every_shell_gets_a_script_that_calls_this_binary() {
    let ws = Workspace::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = ws.run(&["completions", shell]);
        run.success();
        let script = run.stdout();
        assert!(
            script.contains(env!("CARGO_BIN_EXE_mmm")) && script.contains("MMM_COMPLETE"),
            "{shell}:\n{script}"
        );
    }
    let run = ws.run(&["completions", "tcsh"]);
    run.code_is(2);
    assert!(run.stderr().contains("tcsh"), "{}", run.stderr());
}

#[test]
fn completing_never_creates_a_store() {
    let ws = Workspace::new();
    let out = ws
        .mmm(&["--", "mmm", "events", ""])
        .env("MMM_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .output()
        .expect("mmm runs");
    assert!(out.status.success(), "{out:?}");
    assert!(!ws.join(".mmm").exists(), "a Tab created a store");
}

/// Renders a page with `man -l`, with groff's warnings on; returns the text.
fn render(page: &Path) -> String {
    let out = Command::new("man")
        .args(["--warnings", "-P", "cat", "-l"])
        .arg(page)
        .env("MANWIDTH", "100")
        .output()
        .expect("man is installed (apt-get install -y man-db; ./scripts/test installs it)");
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "man warned about {}:\n{}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn man_pages_render_with_man() {
    let ws = Workspace::new();
    let run = ws.run(&["man"]);
    run.success();
    let page = ws.write("mmm.1", &run.stdout());
    let text = render(&page);
    assert!(
        text.contains("SYNOPSIS") && text.contains("--store"),
        "{text}"
    );
    assert!(
        text.contains("completions") && text.contains("dlq"),
        "{text}"
    );

    let run = ws.run(&["man", "dlq", "retry"]);
    run.success();
    let text = render(&ws.write("mmm-dlq-retry.1", &run.stdout()));
    assert!(text.contains("mmm-dlq-retry"), "{text}");

    ws.run(&["man", "--dir", "pages"]).success();
    let pages: Vec<_> = std::fs::read_dir(ws.join("pages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        pages.iter().any(|p| p.ends_with("mmm-run.1")) && pages.len() > 20,
        "{pages:?}"
    );
    for page in &pages {
        render(page);
    }

    let run = ws.run(&["man", "nope"]);
    run.code_is(2);
    assert!(
        run.stderr().contains("`nope` is not a subcommand"),
        "{}",
        run.stderr()
    );
}
