//! GNU parallel's command line as `mmm run` reads it, before clap does: the form without `--`
//! (`mmm run echo {} ::: a b`), and GNU parallel options mmm does not support, refused with
//! what to use instead rather than ignored or taken for a command word.

use std::ffi::OsString;

use clap::CommandFactory;

use crate::cli::{Cli, UsageError};

/// GNU parallel options `mmm run` does not support, each with what to use instead.
const UNSUPPORTED: &[(&[&str], &str)] = &[
    (
        &[
            "--pipe",
            "--spreadstdin",
            "--pipepart",
            "--block",
            "--block-size",
            "--recstart",
            "--recend",
            "--regexp",
            "--roundrobin",
            "--round-robin",
            "--round",
            "--cat",
            "--fifo",
            "--tee",
        ],
        "mmm runs one command per item and never feeds data to a command's standard input; split the data into files first (e.g. with `split`) and give their names as items",
    ),
    (
        &[
            "-S",
            "--sshlogin",
            "--slf",
            "--sshloginfile",
            "--ssh",
            "--sshdelay",
            "--controlmaster",
            "--transfer",
            "--transferfile",
            "--tf",
            "--return",
            "--cleanup",
            "--trc",
            "--basefile",
            "--bf",
            "--workdir",
            "--wd",
            "--onall",
            "--nonall",
            "--env",
        ],
        "mmm does not log in to other hosts; to spread a job over several, use a PostgreSQL store and start `mmm worker` on each host (docs/scale-out.md)",
    ),
    (
        &["-u", "--ungroup"],
        "mmm never cuts a line: use --line-buffer for output as it comes, line by line",
    ),
    (
        &[
            "-X",
            "-m",
            "--xargs",
            "-L",
            "--max-lines",
            "-l",
            "-s",
            "--max-chars",
            "-n",
            "--max-args",
        ],
        "use -N N for N arguments per command",
    ),
    (
        &[
            "--results",
            "--res",
            "--joblog",
            "--files",
            "--compress",
            "--sql",
            "--sqlmaster",
            "--sqlandworker",
            "--sqlworker",
            "--csv",
        ],
        "mmm records every item's attempts and output in its store: see `mmm jobs JOB --json`, `mmm events JOB`, `mmm export JOB --format csv`",
    ),
    (
        &["--resume", "--resume-failed", "--retry-failed"],
        "an interrupted job is resumed with `mmm resume JOB`, its failed items retried with `mmm dlq retry JOB`",
    ),
    (
        &["--bar", "--eta"],
        "mmm shows progress and the ETA by itself (bars on a terminal, plain lines otherwise; see --progress MODE)",
    ),
    (
        &[
            "-I",
            "-i",
            "--replace",
            "--extensionreplace",
            "--er",
            "--basenamereplace",
            "--bnr",
            "--dirnamereplace",
            "--dnr",
            "--basenameextensionreplace",
            "--bner",
            "--seqreplace",
            "--slotreplace",
            "--rpl",
            "--plus",
        ],
        "mmm's replacement strings are fixed: {} {/} {//} {.} {/.} {#} {%} and {1} {2/} ...",
    ),
    (
        &[
            "-E",
            "--eof",
            "-e",
            "--arg-sep",
            "--argsep",
            "--arg-file-sep",
            "--argfilesep",
            "--header",
            "-r",
            "--no-run-if-empty",
            "--shuf",
            "--trim",
            "--ctag",
            "--ctagstring",
        ],
        "not supported by mmm; see docs/oneliner.md for the options it has",
    ),
    (
        &[
            "--semaphore",
            "--sem",
            "--fg",
            "--bg",
            "--tmux",
            "--tmuxpane",
            "--tty",
            "--open-tty",
            "-o",
            "--termseq",
            "--nice",
            "--memfree",
            "--memsuspend",
            "--load",
            "--noswap",
            "--limit",
            "--use-cpus-instead-of-cores",
            "--use-cores-instead-of-cpus",
            "--use-sockets-instead-of-threads",
            "--use-threads-instead-of-cores",
            "--shellquote",
            "-t",
            "--verbose",
            "-v",
            "--citation",
            "--bibtex",
            "--number-of-cpus",
            "--number-of-cores",
            "--number-of-sockets",
            "--number-of-threads",
            "--max-line-length-allowed",
            "--minversion",
            "--filter-hosts",
            "--retries-failed",
            "--ssh-login-file",
            "--plain",
            "--embed",
            "--parens",
            "--record-env",
            "--session",
            "--shebang",
            "--shebang-wrap",
            "--hostgroups",
            "--hgrp",
            "--template",
            "--tmpl",
            "--tagstring-no-tab",
            "--colour-failed",
            "--color-failed",
            "--color",
            "--colour",
            "--keep-order-rev",
            "--group-by",
            "--match",
            "--fast",
            "--quote-all",
        ],
        "not supported by mmm; see docs/oneliner.md for the options it has (`--dry-run` shows the commands)",
    ),
];

/// Prepares `mmm`'s arguments for clap: refuses unsupported GNU parallel options given to
/// `mmm run`, and inserts `--` before a one-liner's command when it was left out.
pub(crate) fn prepare(args: Vec<OsString>) -> Result<Vec<OsString>, UsageError> {
    let mut cli = Cli::command();
    // Built, so that `run` has the global options too (`mmm run --store URL ...`).
    cli.build();
    let Some(run_at) = subcommand_at(&args, &cli) else {
        return Ok(args);
    };
    let Some(run) = cli.find_subcommand("run") else {
        return Ok(args);
    };
    let mut i = run_at + 1;
    while i < args.len() {
        let word = args[i].to_string_lossy();
        if word == "--" {
            return Ok(args);
        }
        if word.len() > 1 && word.starts_with('-') {
            if let Some(hint) = unsupported(&word) {
                let name = word.split('=').next().unwrap_or(&word);
                return Err(UsageError::new(format!(
                    "mmm run: GNU parallel's option `{name}` is not supported\n  hint: {hint}"
                )));
            }
            // `run`'s own options, and the global ones (`--store`) given after `run`: the
            // command was built, so `run` has those too.
            if takes_value(run, &word) {
                i += 1;
            }
            i += 1;
            continue;
        }
        // The command starts here. Without `--`, it is a one-liner when the word is not a
        // job file and a `:::` or `::::` follows, or it names no file at all (`ls | mmm run
        // gzip`); a missing `*.yml` stays a job file, to be reported as missing.
        let has_sources = args[i + 1..]
            .iter()
            .any(|w| matches!(w.to_str(), Some(":::" | "::::" | ":::+" | "::::+")));
        let path = std::path::Path::new(word.as_ref());
        let names_a_file = path.exists()
            || path
                .extension()
                .is_some_and(|e| e == "yml" || e == "yaml" || e == "json");
        if is_job_file(&word) || (!has_sources && names_a_file) {
            return Ok(args);
        }
        let mut out = args[..i].to_vec();
        out.push(OsString::from("--"));
        out.extend_from_slice(&args[i..]);
        return Ok(out);
    }
    Ok(args)
}

/// The position of `run` when it is the subcommand.
fn subcommand_at(args: &[OsString], cli: &clap::Command) -> Option<usize> {
    let mut i = 1;
    while i < args.len() {
        let word = args[i].to_string_lossy();
        if word.starts_with('-') {
            if takes_value(cli, &word) {
                i += 1;
            }
            i += 1;
            continue;
        }
        return (word == "run").then_some(i);
    }
    None
}

/// Whether an option word (`--jobs`, `-j`, `-j4`, `--jobs=4`) is one of `command`'s that
/// takes its value from the next word.
fn takes_value(command: &clap::Command, word: &str) -> bool {
    let arg = if let Some(long) = word.strip_prefix("--") {
        if long.contains('=') {
            return false;
        }
        command.get_arguments().find(|a| {
            a.get_long() == Some(long)
                || a.get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&long))
        })
    } else {
        let mut chars = word.chars().skip(1);
        let (Some(short), None) = (chars.next(), chars.next()) else {
            return false;
        };
        command.get_arguments().find(|a| {
            a.get_short() == Some(short)
                || a.get_all_short_aliases()
                    .is_some_and(|aliases| aliases.contains(&short))
        })
    };
    arg.is_some_and(|a| a.get_action().takes_values())
}

/// The hint for an unsupported GNU parallel option, if `word` is one.
fn unsupported(word: &str) -> Option<&'static str> {
    let name = word.split('=').next().unwrap_or(word);
    UNSUPPORTED
        .iter()
        .find(|(names, _)| names.contains(&name))
        .map(|(_, hint)| *hint)
}

/// A word naming a job file: an existing file with a YAML extension.
fn is_job_file(word: &str) -> bool {
    let path = std::path::Path::new(word);
    path.is_file() && path.extension().is_some_and(|e| e == "yml" || e == "yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(words: &[&str]) -> Result<Vec<String>, String> {
        let args = std::iter::once("mmm")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect();
        prepare(args)
            .map(|out| {
                out.into_iter()
                    .skip(1)
                    .map(|w| w.to_string_lossy().into_owned())
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_double_dash_is_inserted_before_the_command() {
        assert_eq!(
            prepared(&["run", "-j", "2", "echo", "-n", "{}", ":::", "a"]).expect("ok"),
            ["run", "-j", "2", "--", "echo", "-n", "{}", ":::", "a"]
        );
        assert_eq!(
            prepared(&["--store", "s", "run", "-k", "echo", "::::", "f"]).expect("ok"),
            ["--store", "s", "run", "-k", "--", "echo", "::::", "f"]
        );
        // A global option after `run` takes its value too.
        assert_eq!(
            prepared(&[
                "run",
                "--store",
                "postgres://h/db?a=1&b=2",
                "echo",
                ":::",
                "a"
            ])
            .expect("ok"),
            [
                "run",
                "--store",
                "postgres://h/db?a=1&b=2",
                "--",
                "echo",
                ":::",
                "a"
            ]
        );
        assert_eq!(
            prepared(&["run", "--store", "x", "--", "test", ":::", "a"]).expect("ok"),
            ["run", "--store", "x", "--", "test", ":::", "a"]
        );
        // Nothing to do: already there, or no source follows (a job file).
        for words in [
            &["run", "--", "echo", ":::", "a"][..],
            &["run", "job.yml", "-j", "2"],
            &["run", "Cargo.toml"],
            &["jobs", "echo", ":::"],
        ] {
            assert_eq!(prepared(words).expect("ok"), words);
        }
    }

    #[test]
    fn unsupported_options_are_refused_by_name() {
        let error = prepared(&["run", "--pipe", "--", "cat"]).unwrap_err();
        assert!(error.contains("`--pipe` is not supported"), "{error}");
        let error = prepared(&["run", "-j", "2", "--sshlogin=a", "echo", ":::", "x"]).unwrap_err();
        assert!(error.contains("`--sshlogin`"), "{error}");
        assert!(error.contains("mmm worker"), "{error}");
        // After the command it is the command's own argument.
        assert!(prepared(&["run", "echo", "--pipe", ":::", "x"]).is_ok());
    }
}
