//! Unit tests of templates: parsing, quoting for each shell position, and rendering.

use super::render::{apply_replacement, quote};
use super::*;
use crate::MapCounts;
use serde_json::Value;
use serde_json::json;

fn env() -> BTreeMap<String, String> {
    BTreeMap::from([("OUT".to_string(), "out dir".to_string())])
}

fn ctx<'a>(item: &'a Value, env: &'a BTreeMap<String, String>) -> RenderContext<'a> {
    RenderContext {
        item: Some(item),
        item_key: Some("k1"),
        seq: 7,
        slot: 2,
        env,
        map: None,
    }
}

fn shell(source: &str, item: &Value) -> String {
    let env = env();
    Template::parse_shell(source, &env)
        .expect("template parses")
        .render_shell(&ctx(item, &env))
        .expect("template renders")
}

fn plain(source: &str, item: &Value) -> Result<String, RenderError> {
    let env = env();
    Template::parse_plain(source)
        .expect("template parses")
        .render_plain(&ctx(item, &env))
}

/// Runs `script` with `sh -c` in a fresh directory; returns stdout and whether the
/// directory is still empty (nothing was created by an injected command).
fn run_sh(script: &str) -> (Vec<u8>, bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .output()
        .expect("sh runs");
    assert!(
        output.status.success(),
        "sh failed for {script:?}: {output:?}"
    );
    let empty = std::fs::read_dir(dir.path())
        .expect("read dir")
        .next()
        .is_none();
    (output.stdout, empty)
}

const NASTY: &[&str] = &[
    "$(touch x)",
    "`touch x`",
    "a; touch x",
    "a | touch x",
    "a && touch x &",
    "it's",
    "say \"hi\"",
    "'\"'\"",
    "* ? [a]",
    "~ ~root",
    "line1\nline2\n",
    "tab\there",
    "ünïcödé ✓ 日本",
    "",
    "\\",
    "\\'",
    "$HOME ${HOME} $$",
    "-n",
    "'; touch x; '",
    "\"; touch x; \"",
    "# not a comment",
    "!x",
];

#[test]
fn values_reach_the_shell_literally_in_every_quoting_context() {
    let sources = [
        "printf '%s' ${item}",
        "printf '%s' \"${item}\"",
        "printf '%s' 'pre${item}post'",
        "printf '%s' \"pre ${item} post\"",
        "printf '%s' \"$(printf '%s' ${item})\"",
        "printf '%s' \"$(printf '%s' \"${item}\")\"",
        "x=${item}; printf '%s' \"$x\"",
    ];
    for source in sources {
        for value in NASTY {
            let item = json!(value);
            let script = shell(source, &item);
            let (stdout, empty) = run_sh(&script);
            let mut expected = value.to_string();
            if source.contains("pre${item}post") {
                expected = format!("pre{value}post");
            } else if source.contains("pre ${item} post") {
                expected = format!("pre {value} post");
            }
            if source.contains("$(") {
                // Command substitution drops trailing newlines.
                expected = expected.trim_end_matches('\n').to_string();
            }
            assert_eq!(
                String::from_utf8_lossy(&stdout),
                expected,
                "source {source:?}, value {value:?}, script {script:?}"
            );
            assert!(empty, "a file was created by {script:?}");
        }
    }
}

#[test]
fn quoting_rules_are_exact() {
    assert_eq!(quote("it's", Quoting::Unquoted), r"'it'\''s'");
    assert_eq!(quote("", Quoting::Unquoted), "''");
    assert_eq!(quote("a\"$`\\b", Quoting::DoubleQuoted), "a\\\"\\$\\`\\\\b");
    assert_eq!(quote("it's", Quoting::SingleQuoted), r"it'\''s");
    assert_eq!(quote("it's", Quoting::Raw), "it's");
}

#[test]
fn env_names_are_substituted_other_variables_left_to_the_shell() {
    let item = json!("x");
    assert_eq!(shell("cd ${OUT}", &item), "cd 'out dir'");
    assert_eq!(shell("echo ${HOME} ${x:-d}", &item), "echo ${HOME} ${x:-d}");
    assert_eq!(shell("echo $${item}", &item), "echo ${item}");
}

#[test]
fn escaped_dollar_is_not_a_placeholder() {
    let item = json!("x");
    assert_eq!(shell(r"echo \${item}", &item), r"echo \${item}");
    assert_eq!(shell(r#"echo "\${item}""#, &item), r#"echo "\${item}""#);
}

#[test]
fn shell_expansions_are_lexed_inside_not_skipped() {
    let item = json!("a b; touch x");
    // The `}` inside `"}"` must not hide the quote that follows it.
    let script = shell("printf '%s|' '${' \"}\" ${item}", &item);
    assert_eq!(script, "printf '%s|' '${' \"}\" 'a b; touch x'");
    let (stdout, empty) = run_sh(&script);
    assert_eq!(String::from_utf8_lossy(&stdout), "${|}|a b; touch x|");
    assert!(empty);
    // Inside a shell default value, our placeholder is still quoted.
    let script = shell("printf '%s' ${UNSET_VAR:-${item}}", &item);
    let (stdout, empty) = run_sh(&script);
    assert_eq!(String::from_utf8_lossy(&stdout), "a b; touch x");
    assert!(empty);
    // An unclosed `${` that is not ours is the shell's business.
    assert_eq!(
        shell("echo '${' ${item}", &item),
        "echo '${' 'a b; touch x'"
    );
}

#[test]
fn comments_are_left_alone() {
    let item = json!("x");
    assert_eq!(
        shell("echo ${item} # uses ${item.nope}\necho ${item}", &item),
        "echo x # uses ${item.nope}\necho x"
    );
    // `#` inside a word is not a comment.
    assert_eq!(shell("echo a#${item}", &item), "echo a#x");
}

#[test]
fn unsafe_contexts_are_refused() {
    let env = env();
    for source in [
        "echo `echo ${item}`",
        "echo \"`echo ${item}`\"",
        "echo $((${item} + 1))",
        "cat <<EOF\n${item}\nEOF",
        "echo $(case a in a) echo ${item};; esac)",
        "(( n = ${item} ))",
        "echo $'\\'' ${item}",
    ] {
        let error = Template::parse_shell(source, &env).unwrap_err();
        assert!(
            matches!(error, TemplateError::UnsafeContext { .. }),
            "{source}: {error}"
        );
    }
    // A case at the top level keeps `$(...)` nesting certain.
    assert!(Template::parse_shell("case a in a) echo ${item};; esac", &env).is_ok());
}

#[test]
fn syntax_errors_name_the_offset() {
    let error = Template::parse_plain("a ${item.x").unwrap_err();
    assert_eq!(error, TemplateError::Unclosed { offset: 2 });
    let error = Template::parse_plain("${item..x}").unwrap_err();
    assert!(matches!(
        error,
        TemplateError::BadItemPath { offset: 0, .. }
    ));
    let error = Template::parse_plain("${item[x]}").unwrap_err();
    assert!(matches!(error, TemplateError::BadItemPath { .. }));
    let error = Template::parse_plain("${map.done}").unwrap_err();
    assert!(matches!(error, TemplateError::UnknownMapCount { .. }));
    let error = Template::parse_plain("${x:-y}").unwrap_err();
    assert!(matches!(error, TemplateError::UnknownPlaceholder { .. }));
    let error = Template::parse_shell("echo ${OUT", &env()).unwrap_err();
    assert_eq!(error, TemplateError::Unclosed { offset: 5 });
    let error = Template::parse_shell("echo ${item.x", &env()).unwrap_err();
    assert_eq!(error, TemplateError::Unclosed { offset: 5 });
    // Not ours: the shell will complain about it.
    assert!(Template::parse_shell("echo ${HOME", &env()).is_ok());
}

#[test]
fn item_paths_render_scalars_as_text_and_structures_as_json() {
    let item = json!({"a": {"b": "deep"}, "list": [1, 2.5, true, null], "obj": {"k": [1]}});
    assert_eq!(plain("${item.a.b}", &item).unwrap(), "deep");
    assert_eq!(plain("${item.list[0]}", &item).unwrap(), "1");
    assert_eq!(plain("${item.list[1]}", &item).unwrap(), "2.5");
    assert_eq!(plain("${item.list[2]}", &item).unwrap(), "true");
    assert_eq!(plain("${item.list[3]}", &item).unwrap(), "null");
    assert_eq!(plain("${item.obj}", &item).unwrap(), r#"{"k":[1]}"#);
    assert_eq!(
        plain("${item.list}", &item).unwrap(),
        r#"[1,2.5,true,null]"#
    );
    assert_eq!(plain("${item_key}:${OUT}", &item).unwrap(), "k1:out dir");
    assert_eq!(plain("${item}", &json!("raw \"s\"")).unwrap(), "raw \"s\"");
}

#[test]
fn missing_fields_are_errors_that_list_the_keys() {
    let item = json!({"path": "a.jpg", "size": 3});
    let error = plain("${item.pth}", &item).unwrap_err();
    assert_eq!(
        error.to_string(),
        "`${item.pth}`: the item has no `item.pth`\n  hint: the item's top-level keys are: `path`, `size`"
    );
    let error = plain("${item.list[3]}", &json!({"list": [1]})).unwrap_err();
    assert!(
        matches!(error, RenderError::MissingField { ref missing, .. } if missing == "item.list[3]")
    );
    let error = plain("${item.x}", &json!("text")).unwrap_err();
    assert!(
        error.to_string().contains("the item is a string"),
        "{error}"
    );
}

#[test]
fn map_counts_exist_only_when_given() {
    let env = env();
    let template =
        Template::parse_plain("${map.completed}/${map.total} ${map.failed} ${map.skipped}")
            .unwrap();
    let counts = MapCounts {
        total: 10,
        completed: 7,
        dead_lettered: 2,
        skipped: 1,
    };
    let with_counts = RenderContext {
        item: None,
        item_key: None,
        seq: 0,
        slot: 0,
        env: &env,
        map: Some(&counts),
    };
    assert_eq!(template.render_plain(&with_counts).unwrap(), "7/10 2 1");
    let without = RenderContext {
        map: None,
        ..with_counts
    };
    assert!(matches!(
        template.render_plain(&without),
        Err(RenderError::NoMapCounts { .. })
    ));
}

#[test]
fn plain_env_falls_back_to_the_process_environment() {
    let item = json!(1);
    // PATH is set in any environment that can run these tests.
    assert!(!plain("${PATH}", &item).unwrap().is_empty());
    let error = plain("${MMM_SURELY_NOT_SET_ANYWHERE}", &item).unwrap_err();
    assert!(matches!(error, RenderError::UnknownVariable { .. }));
}

#[test]
fn nul_bytes_are_refused() {
    let error = plain("${item}", &json!("a\u{0}b")).unwrap_err();
    assert!(matches!(error, RenderError::NulByte { .. }));
}

#[test]
fn conditions() {
    let env = env();
    let item = json!({"flag": true, "off": "OFF", "n": 0, "kind": "photo", "e": ""});
    let check = |source: &str| {
        Template::parse_plain(source)
            .unwrap()
            .evaluate_condition(&ctx(&item, &env))
            .unwrap()
    };
    assert!(check("${item.flag}"));
    assert!(!check("${item.off}"));
    assert!(!check("${item.n}"));
    assert!(!check("${item.e}"));
    assert!(!check(" no "));
    assert!(!check("Null"));
    assert!(check("yes"));
    assert!(check("${item.kind} == photo"));
    assert!(!check("${item.kind} != photo"));
    assert!(check("${item.kind}==photo"));
    assert!(check("${item.kind} != video"));
    // An operator inside a value is data, not an operator.
    let tricky = json!({"a": "x == y"});
    let template = Template::parse_plain("${item.a}").unwrap();
    assert!(template.evaluate_condition(&ctx(&tricky, &env)).unwrap());
}

#[test]
fn replacement_strings_follow_gnu_parallel() {
    let cases = [
        ("dir.x/file", Replacement::NoExtension, "dir.x/file"),
        ("file.tar.gz", Replacement::NoExtension, "file.tar"),
        ("a/b.jpg", Replacement::NoExtension, "a/b"),
        ("file.", Replacement::NoExtension, "file."),
        (".bashrc", Replacement::NoExtension, ""),
        ("a/b.c", Replacement::Basename, "b.c"),
        ("b.c", Replacement::Basename, "b.c"),
        ("a/b/", Replacement::Basename, ""),
        ("/a/b.c", Replacement::BasenameNoExtension, "b"),
        ("sub.dir/bar", Replacement::BasenameNoExtension, "bar"),
        ("a/b/c", Replacement::Dirname, "a/b"),
        ("a", Replacement::Dirname, "."),
        ("/a", Replacement::Dirname, "/"),
        ("/", Replacement::Dirname, "/"),
        ("a/b/", Replacement::Dirname, "a"),
        ("a//b", Replacement::Dirname, "a"),
        ("./a.jpg", Replacement::Dirname, "."),
        ("", Replacement::Dirname, "."),
    ];
    for (item, replacement, expected) in cases {
        assert_eq!(
            apply_replacement(replacement, item),
            expected,
            "{replacement:?} of {item:?}"
        );
    }
}

#[test]
fn oneliner_shell_quotes_replacements_and_leaves_dollar_braces() {
    let env = BTreeMap::new();
    let template = Template::parse_oneliner_shell("echo {} \"{/}\" ${HOME} {#}/{%}").unwrap();
    let item = json!("d/it's");
    let rendered = template.render_shell(&ctx(&item, &env)).unwrap();
    assert_eq!(rendered, r#"echo 'd/it'\''s' "it's" ${HOME} 7/2"#);
}

/// Payloads that create `pwned` only if the shell parses them as code (the `${IFS}`
/// keeps word splitting of command output from turning them into a command).
const PAYLOADS: &[&str] = &[
    "$(touch${IFS}pwned)",
    "`touch${IFS}pwned`",
    ";touch${IFS}pwned;",
    "';touch${IFS}pwned;'",
    "\";touch${IFS}pwned;\"",
    "\\';touch${IFS}pwned;#",
    "\ntouch${IFS}pwned\n",
    "});touch${IFS}pwned;({",
    "'\"$(touch${IFS}pwned)\"'",
];

const FRAGMENTS: &[&str] = &[
    "echo ",
    "${item}",
    "${item}",
    "'",
    "\"",
    "$(",
    ")",
    "(",
    " ",
    ";",
    "\\",
    "#",
    "\n",
    "${",
    "}",
    "$",
    "`",
    "x",
    "=",
    "|",
    "&&",
    "${UNSET:-",
    "$((",
    "<<",
    "case ",
    " in ",
    "esac",
    "$'",
    "((",
    "))",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Whatever shell line a user writes, a substituted value never runs as code: the
    /// line is either refused at load time or the payload stays data.
    #[test]
    fn no_template_lets_a_value_run_as_code(
        pieces in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 1..12),
        payload in proptest::sample::select(PAYLOADS),
    ) {
        let source: String = pieces.concat();
        let env = BTreeMap::new();
        let Ok(template) = Template::parse_shell(&source, &env) else {
            return Ok(());
        };
        let item = json!(payload);
        let script = template.render_shell(&ctx(&item, &env)).expect("renders");
        let dir = tempfile::tempdir().expect("temp dir");
        // The script may well be invalid shell; only what it creates matters.
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("sh runs");
        proptest::prop_assert!(
            !dir.path().join("pwned").exists(),
            "source {:?} rendered {:?}", source, script
        );
    }
}

#[test]
fn positional_replacement_strings_name_an_items_values() {
    let env = BTreeMap::new();
    let item = json!(["dir/a.tar.gz", "it's"]);
    let template =
        Template::parse_oneliner_shell("echo {2} {1/} {1//} {1.} {1/.} {3} {1..3}").unwrap();
    // `{3}`, a value the item lacks, is an empty argument; `{1..3}` is the shell's.
    assert_eq!(
        template.render_shell(&ctx(&item, &env)).unwrap(),
        r"echo 'it'\''s' a.tar.gz dir dir/a.tar a.tar '' {1..3}"
    );
    // An item of one value is `{1}`.
    let single = json!("x.txt");
    let word = Template::parse_oneliner_word("{1.}-{2}");
    assert_eq!(word.render_plain(&ctx(&single, &env)).unwrap(), "x-");
}

#[test]
fn whole_item_strings_spread_over_several_values_one_word_each() {
    let env = BTreeMap::new();
    let item = json!(["a b", "c"]);
    let line = Template::parse_oneliner_shell("touch {} \"{}\"").unwrap();
    assert_eq!(
        line.render_shell(&ctx(&item, &env)).unwrap(),
        r#"touch 'a b' c "a b c""#
    );
    let argv = CommandTemplate::Argv(vec![
        Template::parse_oneliner_word("touch"),
        Template::parse_oneliner_word("{}"),
        Template::parse_oneliner_word("x{}"),
    ]);
    assert_eq!(
        argv.render(&ctx(&item, &env)).unwrap(),
        RenderedCommand::Argv(vec![
            "touch".into(),
            "a b".into(),
            "c".into(),
            "xa b c".into()
        ])
    );
    assert_eq!(
        RenderedCommand::Argv(vec!["echo".into(), "a b".into(), "c.d".into(), "".into()])
            .to_shell_line(),
        "echo 'a b' c.d ''"
    );
}
