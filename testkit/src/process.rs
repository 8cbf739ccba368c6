//! Where things are (the repository, its recipes, this build's binaries) and
//! running them as AWS or a person would.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The repository's recipe root (`images/`).
pub fn recipe_root() -> PathBuf {
    repo().join("images")
}

/// The binary `name` of this build (`target/debug/NAME`): a function, or `kiln`.
pub fn function_binary(name: &str) -> PathBuf {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join(name)))
        .expect("the target directory");
    assert!(
        binary.is_file(),
        "no function binary {}: run `cargo build --workspace --bins` (make test does)",
        binary.display()
    );
    binary
}

/// Runs function binary `name` as Lambda does, for one `event`, with `env`
/// added to this process's environment (scripts/local_lambda.py). Returns
/// whether it answered without error, and its answer.
pub fn invoke_function(
    name: &str,
    env: &[(&str, String)],
    event: &serde_json::Value,
) -> (bool, serde_json::Value) {
    use std::io::Write as _;
    let mut child = Command::new("python3")
        .arg(repo().join("scripts/local_lambda.py"))
        .arg(function_binary(name))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 scripts/local_lambda.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(event.to_string().as_bytes())
        .expect("write the event");
    let output = child.wait_with_output().expect("the function's answer");
    let answer = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{name} answered {:?}: {e}", output.stdout));
    (output.status.success(), answer)
}

/// The `kiln` command of this build, to run as a person would.
pub fn kiln() -> assert_cmd::Command {
    assert_cmd::Command::new(function_binary("kiln"))
}

/// Opens `page` in headless Chromium (tests/browser/render.cjs): what it
/// shows, and every console error, page error and request it made.
pub fn render_page(page: &Path, screenshot: &Path) -> serde_json::Value {
    let script = repo().join("tests/browser/render.cjs");
    let output = Command::new("node")
        .arg(&script)
        .arg(page)
        .arg(screenshot)
        .env("NODE_PATH", repo().join(".tools/node_modules"))
        .output()
        .expect("node (make test installs it, and Chromium)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the renderer's JSON")
}
