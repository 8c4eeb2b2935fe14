//! Item values are data, never code: whatever they contain reaches the command as literal text.

use crate::harness::Workspace;

/// Values that a shell would expand, split or execute if they were pasted in unquoted.
const NASTY: &[&str] = &[
    "$(touch pwned1)",
    "`touch pwned2`",
    "a; touch pwned3",
    "it's \"quoted\"",
    "*",
    "line one\nline two",
    "$HOME ${PATH} ~",
    "| touch pwned4 &",
    "",
    "'",
    "\\",
];

fn assert_nothing_created(ws: &Workspace) {
    for n in 1..=4 {
        assert!(
            !ws.join(&format!("pwned{n}")).exists(),
            "an item was executed (pwned{n})"
        );
    }
}

#[test]
fn one_liner_values_reach_a_shell_command_literally() {
    let ws = Workspace::new();
    // The pipe makes it a shell line: values are substituted quoted.
    let mut args = vec![
        "run",
        "-j",
        "2",
        "--",
        "printf '%s\\0' {} >> out.bin; true | cat",
        ":::",
    ];
    args.extend(NASTY.iter().filter(|v| !v.is_empty()));
    ws.run(&args).success();
    assert_nothing_created(&ws);
    let out = std::fs::read(ws.join("out.bin")).unwrap();
    let mut got: Vec<String> = out
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect();
    let mut want: Vec<String> = NASTY
        .iter()
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn job_file_values_reach_the_shell_literally_in_every_quoting_context() {
    let ws = Workspace::new();
    let lines: Vec<String> = NASTY
        .iter()
        .enumerate()
        .map(|(i, v)| serde_json::json!({ "n": i, "v": v }).to_string())
        .collect();
    ws.write("items.jsonl", &(lines.join("\n") + "\n"));
    ws.write(
        "job.yml",
        r#"
map:
  input: items.jsonl
  key: "n${item.n}"
  max_parallel: 2
  steps:
    - name: bare
      shell: printf '%s' ${item.v} > bare-${item.n}.out
    - name: double
      shell: printf '%s' "${item.v}" > "double-${item.n}.out"
    - name: single
      shell: printf '%s' '${item.v}' > 'single-${item.n}.out'
    - name: env
      shell: printf '%s' "$MMM_ITEM" > env-${item.n}.out
"#,
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    assert_nothing_created(&ws);
    for (i, v) in NASTY.iter().enumerate() {
        for ctx in ["bare", "double", "single"] {
            assert_eq!(
                &ws.read(&format!("{ctx}-{i}.out")),
                v,
                "context {ctx}, value {v:?}"
            );
        }
        let env: serde_json::Value =
            serde_json::from_str(&ws.read(&format!("env-{i}.out"))).unwrap();
        assert_eq!(env["v"], *v);
    }
}
