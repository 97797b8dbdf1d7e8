//! What `fleetdeck runbook check` knows of the host: the table of every host function a
//! runbook may call (the mutations' rows come from `actions::MUTATION_SPECS`), and a walk of a
//! compiled runbook's AST that resolves each call against that table, the script's own
//! functions and Rhai's built-ins, so `no_such_fn(ns)` or `cordon(a, b)` is reported at its
//! file:line when checked, not when the runbook first fires. Imports actions and the engine.
//!
//! Only plain calls are checked: a method on a value (`x.len()`) resolves against the value's
//! type at run time, an operator is Rhai's own, and a namespaced call cannot reach anything
//! (`import` resolves nothing in the sandbox).

use std::collections::{BTreeMap, BTreeSet};

use rhai::{ASTNode, Expr, FnCallExpr, Position, Stmt};

use super::engine::Runbook;
use super::meta::RunbookError;
use crate::actions::MUTATION_SPECS;

/// One host function a runbook may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFn {
    pub name: &'static str,
    /// The argument counts it takes (each one is a registered overload).
    pub arities: &'static [usize],
    /// How a runbook calls it.
    pub usage: &'static str,
    /// Whether it asks the guard for a mutation (its row is in `actions::MUTATION_SPECS`).
    pub mutation: bool,
}

/// The host functions that are not mutations: views of the fleet, notes, waits, approvals.
const OTHER_HOST_FNS: &[(&str, &[usize], &str)] = &[
    ("nodes", &[0], "nodes()"),
    ("pods_on", &[1], "pods_on(node)"),
    ("gpus", &[1], "gpus(node)"),
    ("endpoints", &[0], "endpoints()"),
    ("signals", &[0], "signals()"),
    ("pdbs", &[0], "pdbs()"),
    ("deployments", &[0], "deployments()"),
    ("seconds_since", &[1], "seconds_since(rfc3339)"),
    ("note", &[1], "note(text)"),
    ("unresolved", &[1], "unresolved(reason)"),
    (
        "notify",
        &[2],
        "notify(sink, text or #{ summary, severity, details })",
    ),
    ("require_approval", &[1], "require_approval(reason)"),
    ("wait_for", &[3], "wait_for(condition, target, timeout)"),
    ("sleep", &[1], "sleep(seconds)"),
];

/// Rhai's keywords that read as calls; they are not registered functions.
const RHAI_KEYWORD_CALLS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
];

/// Every host function: the mutations' rows, then the rest.
pub fn host_functions() -> Vec<HostFn> {
    MUTATION_SPECS
        .iter()
        .map(|s| HostFn {
            name: s.host_fn,
            arities: s.arities,
            usage: s.usage,
            mutation: true,
        })
        .chain(OTHER_HOST_FNS.iter().map(|&(name, arities, usage)| HostFn {
            name,
            arities,
            usage,
            mutation: false,
        }))
        .collect()
}

/// The Runbooks docs' table of the mutations (runbooks/README.md), made from
/// `actions::MUTATION_SPECS`: a test keeps the docs equal to it.
pub fn mutation_table_markdown() -> String {
    let mut table = String::from("| host function | cockpit key | guard budget |\n|---|---|---|\n");
    for s in MUTATION_SPECS {
        let key = s
            .cockpit_key
            .map(|k| format!("`{k}`"))
            .unwrap_or_else(|| "—".into());
        table.push_str(&format!(
            "| `{}` | {key} | {} |\n",
            s.usage,
            s.budget.describe()
        ));
    }
    table
}

/// Rhai's built-in functions, by name, with the argument counts each takes.
fn builtins() -> BTreeMap<String, BTreeSet<usize>> {
    let mut known: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (name, arity) in super::engine::native_functions(None) {
        known.entry(name).or_default().insert(arity);
    }
    known
}

/// A call `runbook check` could not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedCall {
    pub name: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Runbook {
    /// Every call of the script that names no host function, no function of the script's own
    /// and no Rhai built-in, or gives one a count of arguments it does not take. Each is an
    /// error naming the file, line and column, with the nearest host function's name.
    pub fn unresolved_calls(&self) -> Vec<RunbookError> {
        let ast = match self.unoptimized_ast() {
            Ok(ast) => ast,
            Err(e) => return vec![e],
        };
        unresolved_calls(&ast)
            .into_iter()
            .map(|c| RunbookError::new(&self.path, c.line, c.column, c.message))
            .collect()
    }
}

fn unresolved_calls(ast: &rhai::AST) -> Vec<UnresolvedCall> {
    let host = host_functions();
    let mut known: BTreeMap<String, BTreeSet<usize>> = builtins();
    for f in &host {
        known
            .entry(f.name.to_string())
            .or_default()
            .extend(f.arities.iter().copied());
    }
    for f in ast.iter_functions() {
        known
            .entry(f.name.to_string())
            .or_default()
            .insert(f.params.len());
    }
    let mut calls: Vec<(String, usize, Position)> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, pos))) => Some((call, *pos)),
            Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => Some((call, *pos)),
            _ => None,
        };
        if let Some((call, pos)) = call
            && is_plain_call(call)
        {
            calls.push((call.name.to_string(), call.args.len(), pos));
        }
        true
    });
    // A closure is compiled to a function of its own, walked after the script's: in line order
    // a report reads as the file does.
    calls.sort_by_key(|(_, _, pos)| (pos.line(), pos.position()));
    let mut problems = Vec::new();
    for (name, given, pos) in calls {
        if RHAI_KEYWORD_CALLS.contains(&name.as_str()) {
            continue;
        }
        let (line, column) = (pos.line().unwrap_or(0), pos.position().unwrap_or(0));
        let message = match known.get(&name) {
            Some(arities) if arities.contains(&given) => continue,
            Some(arities) => {
                let usage = host
                    .iter()
                    .find(|f| f.name == name)
                    .map(|f| format!(": {}", f.usage))
                    .unwrap_or_default();
                format!(
                    "{name} takes {} argument{}, not {given}{usage}",
                    counts(arities),
                    if arities.iter().eq([1].iter()) {
                        ""
                    } else {
                        "s"
                    },
                )
            }
            None => format!(
                "unknown function {name}({}){}; the host functions are {}",
                vec!["_"; given].join(", "),
                nearest(&host, &name)
                    .map(|f| format!(": did you mean {}?", f.usage))
                    .unwrap_or_default(),
                host.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
            ),
        };
        problems.push(UnresolvedCall {
            name,
            line,
            column,
            message,
        });
    }
    problems
}

/// A call by name in the script's own namespace: not an operator, not `module::f`.
fn is_plain_call(call: &FnCallExpr) -> bool {
    !call.is_operator_call()
        && !call.is_qualified()
        && call
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// "1", "1 or 2", "2, 3 or 4".
fn counts(arities: &BTreeSet<usize>) -> String {
    let all: Vec<String> = arities.iter().map(usize::to_string).collect();
    match all.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "no".into(),
    }
}

/// The host function whose name is nearest `name`, when one is near enough to be a typo.
fn nearest<'a>(host: &'a [HostFn], name: &str) -> Option<&'a HostFn> {
    host.iter()
        .map(|f| (strsim::jaro_winkler(f.name, name), f))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, f)| f)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const HEADER: &str = "const RUNBOOK = #{\n    name: \"t\",\n    description: \"test\",\n    trigger: #{ signal: \"gpu.xid\" },\n    cooldown: \"1m\",\n};\n";

    /// The unresolved calls of a runbook whose `fn run` body is `body` (line 8 is its first).
    fn problems(body: &str) -> Vec<UnresolvedCall> {
        let source = format!("{HEADER}fn run(signal) {{\n{body}\n}}\n");
        let rb = Runbook::from_source(Path::new("runbooks/t.rhai"), &source).expect("compiles");
        unresolved_calls(&rb.unoptimized_ast().expect("compiles"))
    }

    #[test]
    fn an_unknown_function_is_named_at_its_line() {
        let p = problems("    let ns = \"serving\";\n    no_such_fn(ns);");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].name.as_str(), p[0].line), ("no_such_fn", 9));
        assert!(
            p[0].message.contains("unknown function no_such_fn(_)"),
            "{p:?}"
        );
        assert!(p[0].message.contains("delete_pod"), "{p:?}");
    }

    #[test]
    fn a_typo_of_a_host_function_suggests_it() {
        let p = problems("    delete_pods(\"serving\", \"llama-0\");");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].message.contains("did you mean delete_pod(ns, name)?"),
            "{p:?}"
        );
        let p = problems("    restart_rolout(\"serving\", \"llama\");");
        assert!(
            p[0].message
                .contains("did you mean restart_rollout(ns, name)?"),
            "{p:?}"
        );
    }

    #[test]
    fn a_wrong_argument_count_is_named_with_the_usage() {
        let p = problems("    cordon(signal.subject.node, \"now\");");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, 8);
        assert!(
            p[0].message
                .contains("cordon takes 1 argument, not 2: cordon(node)"),
            "{p:?}"
        );
        let p = problems("    rollback(\"serving\");");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].message
                .contains("rollback takes 2 or 3 arguments, not 1"),
            "{p:?}"
        );
        let p = problems("    delete_pod(\"serving\");");
        assert!(
            p[0].message
                .contains("delete_pod takes 2 arguments, not 1: delete_pod(ns, name)"),
            "{p:?}"
        );
    }

    #[test]
    fn the_scripts_own_functions_resolve_with_their_arity() {
        let source = format!(
            "{HEADER}fn helper(a, b) {{ a + b }}\nfn run(signal) {{\n    helper(1, 2);\n    helper(1);\n}}\n"
        );
        let rb = Runbook::from_source(Path::new("runbooks/t.rhai"), &source).expect("compiles");
        let p = unresolved_calls(&rb.unoptimized_ast().expect("compiles"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, 10);
        assert!(
            p[0].message.contains("helper takes 2 arguments, not 1"),
            "{p:?}"
        );
    }

    #[test]
    fn methods_operators_builtins_and_keywords_are_not_reported() {
        let p = problems(
            "    let xs = [1, 2, 3];\n    let n = xs.len() + len(xs) - -1;\n    print(type_of(n));\n    let s = `${n}`.to_upper();\n    if !xs.is_empty() && n > 0 { xs.push(to_string(n)); }\n    let f = Fn(\"run\");\n    let m = #{ a: 1 }; m.keys();\n    for i in range(0, 3) { debug(i); }\n    parse_int(\"4\");\n    sleep(0);",
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn calls_inside_nested_blocks_and_closures_are_checked() {
        let p = problems(
            "    if true { for x in [1] { while false { nope_a(x); } } }\n    let f = |x| nope_b(x);\n    let y = [nope_c()];",
        );
        let names: Vec<&str> = p.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["nope_a", "nope_b", "nope_c"], "{p:?}");
    }

    #[test]
    fn every_shipped_runbook_resolves_every_call() {
        for (file, source) in super::super::shipped::SHIPPED {
            let rb = Runbook::from_source(Path::new(file), source).expect("compiles");
            let p = rb.unresolved_calls();
            assert!(p.is_empty(), "{file}: {p:?}");
        }
    }

    fn doc(file: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn the_runbooks_docs_show_the_mutation_table_as_it_is() {
        let docs = doc("runbooks/README.md");
        let table = mutation_table_markdown();
        assert!(
            docs.contains(&table),
            "runbooks/README.md must hold the mutation table as fleetdeck has it:\n{table}"
        );
    }

    #[test]
    fn the_docs_name_every_host_function() {
        let runbooks = doc("runbooks/README.md");
        let readme = doc("README.md");
        for f in host_functions() {
            assert!(
                runbooks.contains(&format!("`{}(", f.name)),
                "runbooks/README.md does not document {}",
                f.name
            );
            if f.mutation {
                assert!(
                    readme.contains(&format!("`{}`", f.name)),
                    "README.md does not name {}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn every_mutation_row_is_a_host_function_and_names_are_unique() {
        let host = host_functions();
        for s in MUTATION_SPECS {
            assert!(host.iter().any(|f| f.name == s.host_fn), "{}", s.host_fn);
        }
        let names: BTreeSet<&str> = host.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), host.len(), "a host function listed twice");
    }
}
