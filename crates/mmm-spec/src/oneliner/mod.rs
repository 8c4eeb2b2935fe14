//! The GNU-parallel-style one-liner: `mmm run -j 8 -- convert {} -resize 50% out/{/} ::: *.jpg`.
//!
//! Like GNU parallel, the command words are joined with spaces into a shell line and the
//! replacement strings are substituted shell-quoted. When no word needs a shell, the
//! command is executed directly instead (faster, and nothing to quote).
//!
//! Where the items come from and how several sources combine is in [`sources`]; the options
//! recorded with the job in [`options`].

pub(crate) mod halt;
pub(crate) mod options;
pub(crate) mod sources;

use std::collections::BTreeMap;

use super::error::SpecError;
use super::parse::{DEFAULT_BACKOFF, default_parallelism};
use super::{
    AlertRules, CommandTemplate, InputFormat, InputSource, JobPlan, MapPlan, OneLiner, OutputPlan,
    StepPlan, Template,
};
use options::Tag;
use sources::ArgsInput;

/// Characters that mean something to the shell. A word containing any of them (outside a
/// replacement string) makes the command a shell line. `%`, `=` (after the first word),
/// `,`, `:`, `@`, `+`, `-` and `^` mean nothing to `sh` in an ordinary argument, so
/// `-resize 50%` or `--size=3` still run without a shell.
const SHELL_CHARS: &[char] = &[
    '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', ' ', '\t', '\n', '*', '?', '[',
    ']', '#', '~', '{', '}', '!',
];

/// Words that are shell syntax or builtins without a program of their own: as the first
/// word they need a shell.
const SHELL_WORDS: &[&str] = &[
    "!", "{", "}", "[[", "]]", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if",
    "in", "then", "until", "while", "function", "select", "time", ".", ":", "alias", "bg", "break",
    "builtin", "cd", "command", "continue", "declare", "dirs", "disown", "eval", "exec", "exit",
    "export", "fc", "fg", "getopts", "hash", "jobs", "let", "local", "popd", "pushd", "read",
    "readonly", "return", "set", "shift", "shopt", "source", "times", "trap", "type", "typeset",
    "ulimit", "umask", "unalias", "unset", "wait",
];

/// The one-liner's replacement strings, as written in commands.
const REPLACEMENT_STRINGS: &[&str] = &["{//}", "{/.}", "{/}", "{.}", "{#}", "{%}", "{}"];

/// Builds the plan of a one-liner.
pub(super) fn from_oneliner(oneliner: OneLiner) -> Result<JobPlan, SpecError> {
    if oneliner.command.is_empty() || oneliner.command.iter().all(|word| word.is_empty()) {
        return Err(SpecError::OneLinerNoCommand);
    }
    let options = oneliner.options;
    let input = match (
        options.input.sources.is_empty(),
        oneliner.args.is_empty(),
        oneliner.input,
    ) {
        (false, true, None) => {
            check_positions(&oneliner.command, &options.input)?;
            InputSource::Args(options.input.clone())
        }
        (true, false, None) => InputSource::Inline(oneliner.args),
        (true, true, Some(path)) => InputSource::File {
            path,
            format: InputFormat::Lines,
            json_path: None,
        },
        (true, true, None) => return Err(SpecError::OneLinerNoItems),
        _ => return Err(SpecError::OneLinerBothItems),
    };

    let mut words = oneliner.command;
    let has_replacement = words.iter().any(|word| {
        Template::parse_oneliner_word(word)
            .placeholders()
            .next()
            .is_some()
    });
    if !has_replacement && options.input.max_args != Some(0) {
        // As GNU parallel does: a command without replacement strings gets the item appended
        // (`-N0`: nothing is).
        words.push("{}".to_string());
    }
    let command = if options.quote {
        // `-q`: every word reaches the program exactly as written, which is what GNU
        // parallel's quoting of the command achieves.
        CommandTemplate::Argv(
            words
                .iter()
                .map(|word| Template::parse_oneliner_word(word))
                .collect(),
        )
    } else if needs_shell(&words) {
        let line = words.join(" ");
        let template = Template::parse_oneliner_shell(&line).map_err(|source| {
            SpecError::OneLinerTemplate {
                command: line.clone(),
                source,
            }
        })?;
        CommandTemplate::Shell(template)
    } else {
        CommandTemplate::Argv(
            words
                .iter()
                .map(|word| Template::parse_oneliner_word(word))
                .collect(),
        )
    };

    let max_parallel = match oneliner.max_parallel {
        0 => default_parallelism(),
        n => n,
    };
    Ok(JobPlan {
        name: "run".to_string(),
        source: None,
        base_dir: oneliner.base_dir,
        env: BTreeMap::new(),
        setup: Vec::new(),
        map: MapPlan {
            input,
            key: None,
            max_parallel,
            timeout: oneliner.timeout,
            retries: oneliner.retries,
            backoff: DEFAULT_BACKOFF,
            steps: vec![StepPlan {
                name: "command".to_string(),
                command,
                when: None,
                timeout: None,
            }],
            isolation: super::Isolation::Shared,
            on_conflict: None,
            delay: options.delay_ms.map(std::time::Duration::from_millis),
            halt: options.halt,
            rate: None,
            budgets: Vec::new(),
            throttle_exit_codes: crate::DEFAULT_THROTTLE_EXIT_CODES.to_vec(),
        },
        reduce: Vec::new(),
        alerts: AlertRules::default(),
        deadline: None,
        logs: crate::LogPolicy::default(),
        output: OutputPlan {
            keep_order: options.keep_order,
            line_buffer: options.line_buffer,
            tag: options.tag.as_ref().map(|tag| match tag {
                Tag::Args => Template::parse_oneliner_word("{}"),
                Tag::Text(text) => Template::parse_oneliner_word(text),
            }),
        },
    })
}

/// Refuses a positional replacement string (`{3}`) beyond the values every item has, when
/// that number is known before the input is read: it would silently be empty.
fn check_positions(words: &[String], input: &ArgsInput) -> Result<(), SpecError> {
    let Some(count) = input.values_per_item() else {
        return Ok(());
    };
    for word in words {
        for (placeholder, text) in Template::parse_oneliner_word(word).placeholders() {
            if let super::template::Placeholder::Positional { index, .. } = placeholder
                && *index > count
            {
                return Err(SpecError::OneLinerOption {
                    message: format!(
                        "`{text}` names input source {index}, but there {} only {count}\n  \
                         hint: give one source per position (`::: a b ::: 1 2` for {{1}} and \
                         {{2}}), or use --colsep to split lines into columns",
                        if count == 1 { "is" } else { "are" }
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Whether the command words must go through `sh -c`.
fn needs_shell(words: &[String]) -> bool {
    let Some(first) = words.first() else {
        return false;
    };
    // `FOO=1 cmd` is an assignment, and builtins exist only inside a shell.
    if first.contains('=') || SHELL_WORDS.contains(&first.as_str()) {
        return true;
    }
    words.iter().any(|word| {
        // An empty word would vanish when joined into a shell line; keep both paths alike.
        if word.is_empty() {
            return true;
        }
        let mut rest = word.clone();
        for replacement in REPLACEMENT_STRINGS {
            rest = rest.replace(replacement, "");
        }
        rest.contains(SHELL_CHARS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RenderContext, RenderedCommand};
    use serde_json::json;
    use std::path::PathBuf;
    use std::time::Duration;

    fn oneliner(command: &[&str], args: &[&str]) -> OneLiner {
        OneLiner {
            command: command.iter().map(|w| w.to_string()).collect(),
            args: args.iter().map(|w| w.to_string()).collect(),
            input: None,
            options: Default::default(),
            max_parallel: 4,
            timeout: Some(Duration::from_secs(5)),
            retries: 2,
            base_dir: PathBuf::from("/tmp"),
        }
    }

    fn render(plan: &JobPlan, item: &str) -> RenderedCommand {
        let env = BTreeMap::new();
        let item = json!(item);
        let ctx = RenderContext {
            item: Some(&item),
            item_key: Some("k"),
            seq: 3,
            slot: 1,
            env: &env,
            map: None,
        };
        plan.map.steps[0].command.render(&ctx).expect("renders")
    }

    #[test]
    fn plain_words_run_without_a_shell() {
        let plan = from_oneliner(oneliner(
            &["convert", "{}", "-resize", "50%", "out/{/.}.png"],
            &["a/b.jpg"],
        ))
        .expect("valid");
        assert_eq!(
            render(&plan, "dir/it's.jpg"),
            RenderedCommand::Argv(vec![
                "convert".into(),
                "dir/it's.jpg".into(),
                "-resize".into(),
                "50%".into(),
                "out/it's.png".into(),
            ])
        );
        assert_eq!(plan.name, "run");
        assert_eq!(plan.map.steps[0].name, "command");
        assert_eq!(plan.map.retries, 2);
        assert_eq!(plan.map.max_parallel, 4);
        assert_eq!(plan.map.backoff, Duration::from_secs(1));
        assert_eq!(plan.map.input, InputSource::Inline(vec!["a/b.jpg".into()]));
    }

    #[test]
    fn item_is_appended_when_no_replacement_string() {
        let plan = from_oneliner(oneliner(&["gzip", "-9"], &["x"])).expect("valid");
        assert_eq!(
            render(&plan, "a b"),
            RenderedCommand::Argv(vec!["gzip".into(), "-9".into(), "a b".into()])
        );
        let plan = from_oneliner(oneliner(&["echo", "{#}"], &["x"])).expect("valid");
        assert_eq!(
            render(&plan, "a"),
            RenderedCommand::Argv(vec!["echo".into(), "3".into()])
        );
    }

    #[test]
    fn metacharacters_make_a_quoted_shell_line() {
        let plan = from_oneliner(oneliner(&["cat", "{}", "|", "wc", "-l"], &["x"])).expect("valid");
        assert_eq!(
            render(&plan, "$(touch x) 'q'"),
            RenderedCommand::Shell(r"cat '$(touch x) '\''q'\''' | wc -l".into())
        );
        let plan = from_oneliner(oneliner(&["echo {} > {.}.out"], &["x"])).expect("valid");
        assert_eq!(
            render(&plan, "a.txt"),
            RenderedCommand::Shell("echo a.txt > a.out".into())
        );
        for first in ["cd", "FOO=1", "exit"] {
            let plan = from_oneliner(oneliner(&[first, "{}"], &["x"])).expect("valid");
            assert!(
                matches!(plan.map.steps[0].command, CommandTemplate::Shell(_)),
                "{first}"
            );
        }
    }

    #[test]
    fn shell_lines_are_safe_when_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let plan = from_oneliner(oneliner(&["printf", "'%s'", "{}"], &["x"])).expect("valid");
        let RenderedCommand::Shell(line) = render(&plan, "; touch pwned $(touch x)") else {
            panic!("expected a shell line");
        };
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .current_dir(dir.path())
            .output()
            .expect("sh runs");
        assert_eq!(output.stdout, b"; touch pwned $(touch x)");
        assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none());
    }

    #[test]
    fn items_come_from_args_or_input_but_not_both() {
        let mut with_input = oneliner(&["curl", "{}"], &[]);
        with_input.input = Some(PathBuf::from("urls.txt"));
        let plan = from_oneliner(with_input.clone()).expect("valid");
        assert_eq!(
            plan.map.input,
            InputSource::File {
                path: "urls.txt".into(),
                format: InputFormat::Lines,
                json_path: None
            }
        );
        with_input.args = vec!["x".into()];
        assert!(matches!(
            from_oneliner(with_input),
            Err(SpecError::OneLinerBothItems)
        ));
        assert!(matches!(
            from_oneliner(oneliner(&["curl"], &[])),
            Err(SpecError::OneLinerNoItems)
        ));
        assert!(matches!(
            from_oneliner(oneliner(&[], &["x"])),
            Err(SpecError::OneLinerNoCommand)
        ));
    }

    #[test]
    fn zero_parallel_means_one_per_cpu() {
        let mut o = oneliner(&["true"], &["x"]);
        o.max_parallel = 0;
        assert!(from_oneliner(o).expect("valid").map.max_parallel >= 1);
    }
}
