//! Offline checks of a state machine definition against the Rust code: every
//! error name it matches exists, every function placeholder names a crate in
//! `functions/`, every `$.path` it reads exists in the state document it runs on
//! ([`kiln::pipeline::state::BuildState`], [`kiln::channels::rollout::Release`]).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// Error names Step Functions itself raises, which a definition may match.
const SERVICE_ERRORS: &[&str] = &[
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];
/// Placeholders that are not functions.
const OTHER_PLACEHOLDERS: &[&str] = &["EventBusName", "ReleaseStateMachine", "AuditBucket"];

/// Loads a definition.
pub fn load(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every problem of `machine` against the Rust code: error names that no
/// kiln error has, placeholders naming no function crate in `functions`,
/// paths that `state` (a full state document) does not have; `$.input.…`
/// paths (the execution input, before the state document exists) are
/// checked against `input` (a full execution input).
pub fn problems(machine: &Value, state: &Value, input: &Value, functions: &Path) -> Vec<String> {
    let known: BTreeSet<&str> = kiln::Error::names().collect();
    let mut problems = Vec::new();
    for name in error_names(machine) {
        if !(name.starts_with("States.")
            || SERVICE_ERRORS.contains(&name.as_str())
            || known.contains(name.as_str()))
        {
            problems.push(format!(
                "error {name} is not a kiln error (src/error.rs) nor a Step Functions one"
            ));
        }
    }
    for placeholder in placeholders(machine) {
        match placeholder.strip_suffix("Function") {
            Some(function) if functions.join(kebab(function)).join("Cargo.toml").is_file() => {}
            Some(function) => problems.push(format!(
                "placeholder ${{{placeholder}}} names no crate functions/{}",
                kebab(function)
            )),
            None if OTHER_PLACEHOLDERS.contains(&placeholder.as_str()) => {}
            None => problems.push(format!("placeholder ${{{placeholder}}} is unknown")),
        }
    }
    for path in paths(machine) {
        match path.strip_prefix("$.input.") {
            Some(field) if !resolves(input, &format!("$.{field}")) => problems.push(format!(
                "{path} is not a field of the execution input (kiln::pipeline::state::BuildInput)"
            )),
            Some(_) => {}
            None if !resolves(state, &path) => {
                problems.push(format!("{path} is not a field of the state document"))
            }
            None => {}
        }
    }
    problems
}

fn states(machine: &Value) -> impl Iterator<Item = &Value> {
    machine["States"]
        .as_object()
        .into_iter()
        .flat_map(|states| states.values())
}

/// Every name in a `Retry` or `Catch` `ErrorEquals`.
pub fn error_names(machine: &Value) -> BTreeSet<String> {
    states(machine)
        .flat_map(|state| ["Retry", "Catch"].map(|key| &state[key]))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|rule| rule["ErrorEquals"].as_array())
        .flatten()
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect()
}

/// Every `${Placeholder}` in any string of the definition.
pub fn placeholders(machine: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    visit_strings(machine, &mut |text| {
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else { break };
            found.insert(after[..end].to_owned());
            rest = &after[end + 1..];
        }
    });
    found
}

fn visit_strings(value: &Value, visit: &mut impl FnMut(&str)) {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items.iter().for_each(|item| visit_strings(item, visit)),
        Value::Object(fields) => fields
            .values()
            .for_each(|field| visit_strings(field, visit)),
        _ => {}
    }
}

/// Every `$.path` a state reads: its input and choice paths, wait and fail
/// paths, and the `.$` fields of its parameters (context paths `$$.` excepted).
pub fn paths(machine: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for state in states(machine) {
        for key in [
            "InputPath",
            "SecondsPath",
            "TimestampPath",
            "ItemsPath",
            "ErrorPath",
            "CausePath",
        ] {
            found.extend(state[key].as_str().map(str::to_owned));
        }
        collect_variables(&state["Choices"], &mut found);
        collect_parameters(&state["Parameters"], &mut found);
        // A Map's reader, batcher and writer read the Map state's input.
        collect_parameters(&state["ItemReader"]["Parameters"], &mut found);
        collect_parameters(&state["ItemBatcher"]["BatchInput"], &mut found);
        collect_parameters(&state["ResultWriter"]["Parameters"], &mut found);
    }
    found.retain(|path| path.starts_with("$.") || path == "$");
    found
}

fn collect_variables(choices: &Value, found: &mut BTreeSet<String>) {
    for choice in choices.as_array().into_iter().flatten() {
        found.extend(choice["Variable"].as_str().map(str::to_owned));
        collect_variables(&choice["And"], found);
        collect_variables(&choice["Or"], found);
        if !choice["Not"].is_null() {
            collect_variables(&Value::Array(vec![choice["Not"].clone()]), found);
        }
    }
}

fn collect_parameters(parameters: &Value, found: &mut BTreeSet<String>) {
    match parameters {
        Value::Object(fields) => {
            for (key, value) in fields {
                match value.as_str() {
                    Some(path) if key.ends_with(".$") => {
                        found.insert(path.to_owned());
                    }
                    _ => collect_parameters(value, found),
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_parameters(item, found)),
        _ => {}
    }
}

/// The `ItemProcessor` of Map state `state`, as a machine of its own: its
/// states run on each item (or batch), not on the Map state's input.
pub fn processor(machine: &Value, state: &str) -> Value {
    let processor = &machine["States"][state]["ItemProcessor"];
    assert!(
        processor.is_object(),
        "{state} is not a Map state with an ItemProcessor"
    );
    processor.clone()
}

/// Whether `$.a.b` names a field of `document`.
pub fn resolves(document: &Value, path: &str) -> bool {
    let Some(rest) = path.strip_prefix('$') else {
        return false;
    };
    rest.split('.')
        .skip(1)
        .try_fold(document, |value, field| value.as_object()?.get(field))
        .is_some()
}

/// `ResolveSource` -> `resolve-source`.
fn kebab(pascal: &str) -> String {
    let mut out = String::new();
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
