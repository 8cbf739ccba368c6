//! Provisioners as the recipe's steps: each `shell` script (`script`,
//! `scripts`, `inline`) a step with its environment, a reboot between
//! provisioners the previous step's `reboot`, and every other provisioner a
//! report line (Packer documentation, "Shell Provisioner").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::template::{
    self as t, BUILD_NAME, DATE, Finding, Item, UNIQUE, duration_seconds, is_dynamic,
};
use crate::error::{Error, Result};
use crate::recipe::{MAX_TIMEOUT_SECONDS, StepSpec};

/// Packer's shebang for `inline` commands.
const INLINE_SHEBANG: &str = "/bin/sh -e";
/// Longest step name kiln takes.
const MAX_STEP_NAME: usize = 32;

/// The steps and the scripts they run (file name in the recipe, bytes).
#[derive(Default)]
pub(super) struct Steps {
    pub steps: Vec<StepSpec>,
    pub scripts: BTreeMap<String, Vec<u8>>,
}

/// What other provisioners are, and what to do instead.
const OTHERS: &[(&[&str], &str)] = &[
    (
        &["file"],
        "kiln copies no files: write the file from a step (a here-document), or fetch it \
         from S3 in a step",
    ),
    (
        &["ansible", "ansible-local"],
        "run the playbook from a step: install Ansible and run ansible-playbook -c local \
         (or ansible-pull) there",
    ),
    (
        &[
            "chef-solo",
            "chef-client",
            "puppet-masterless",
            "puppet-server",
            "salt-masterless",
            "converge",
            "inspec",
        ],
        "run the tool from a step on the builder",
    ),
    (
        &["shell-local"],
        "runs on the Packer host; kiln has none: do it before or after kiln build",
    ),
    (
        &["powershell", "windows-shell", "windows-restart"],
        "kiln builds Ubuntu images",
    ),
    (&["breakpoint"], "kiln builds hands-off"),
];

/// Shell provisioner fields kiln does differently.
const SHELL_DROPPED: &[(&[&str], &str)] = &[
    (
        &["pause_before", "pause_after", "start_retry_timeout"],
        "kiln waits for the builder's SSM agent before each step",
    ),
    (
        &["max_retries"],
        "kiln runs each step once; a failed step fails the build",
    ),
    (
        &[
            "remote_folder",
            "remote_file",
            "remote_path",
            "skip_clean",
            "use_env_var_file",
            "env_var_format",
            "binary",
        ],
        "kiln writes each script to a private temporary file and removes it",
    ),
    (
        &["valid_exit_codes"],
        "a step succeeds with exit code 0 only",
    ),
    (&["override"], "per-builder overrides are not carried"),
];

/// The steps of `provisioners`, scripts read where Packer would read them
/// (relative paths from `cwd`).
pub(super) fn steps(
    provisioners: &[&Item],
    cwd: &Path,
    build_name: &str,
    findings: &mut Vec<Finding>,
) -> Result<Steps> {
    let mut out = Steps::default();
    for provisioner in provisioners {
        if provisioner.kind != "shell" {
            let message = OTHERS
                .iter()
                .find(|(kinds, _)| kinds.contains(&provisioner.kind.as_str()))
                .map_or("not a provisioner kiln knows: make it a step", |(_, m)| *m);
            findings.push(Finding::dropped(
                format!("{} ({})", provisioner.path, provisioner.kind),
                message,
            ));
            continue;
        }
        shell(provisioner, cwd, build_name, &mut out, findings)?;
    }
    Ok(out)
}

fn shell(
    item: &Item,
    cwd: &Path,
    build_name: &str,
    out: &mut Steps,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let mut fields = item.fields.clone();
    for value in fields.values_mut().flatten() {
        t::replace_in(value, BUILD_NAME, build_name);
    }
    let mut take = |key: &str| fields.remove(key);
    let mut environment = BTreeMap::new();
    if let Some(field) = take("environment_vars") {
        match t::texts(&field) {
            Ok(pairs) => {
                for (i, pair) in pairs.iter().enumerate() {
                    match pair.split_once('=') {
                        Some((name, value)) if !is_dynamic(name) => {
                            environment.insert(name.to_owned(), value.to_owned());
                        }
                        _ => findings.push(Finding::dropped(
                            item.field_path(&format!("environment_vars[{i}]")),
                            "is known only when Packer runs: set it in the script",
                        )),
                    }
                }
            }
            Err(reason) => findings.push(Finding::dropped(
                item.field_path("environment_vars"),
                reason,
            )),
        }
    }
    if let Some(field) = take("env") {
        match t::string_map(&field) {
            Ok(env) => environment.extend(env),
            Err(reason) => findings.push(Finding::dropped(item.field_path("env"), reason)),
        }
    }
    environment.retain(|name, value: &mut String| {
        let known = !is_dynamic(value);
        if !known {
            findings.push(Finding::dropped(
                item.field_path(&format!("environment.{name}")),
                "is known only when Packer runs: set it in the script",
            ));
        }
        known
    });
    let timeout = match take("timeout").map(|f| t::text(&f).map(str::to_owned)) {
        Some(Ok(text)) => match duration_seconds(&text) {
            Some(seconds) => u32::try_from(seconds)
                .unwrap_or(MAX_TIMEOUT_SECONDS)
                .clamp(1, MAX_TIMEOUT_SECONDS),
            None => {
                findings.push(Finding::dropped(
                    item.field_path("timeout"),
                    format!("{text:?} is not a duration"),
                ));
                3600
            }
        },
        Some(Err(reason)) => {
            findings.push(Finding::dropped(item.field_path("timeout"), reason));
            3600
        }
        None => 3600,
    };
    let reboots = take("expect_disconnect").is_some_and(|f| t::flag(&f) == Ok(true));
    if reboots {
        findings.push(Finding::changed(
            item.field_path("expect_disconnect"),
            "kiln reboots the builder after this step (reboot = true); a step's network \
             restart does not stop Run Command",
        ));
    }
    let shebang = take("inline_shebang")
        .and_then(|f| t::text(&f).ok().map(str::to_owned))
        .unwrap_or_else(|| INLINE_SHEBANG.to_owned());
    if take("execute_command").is_some() {
        findings.push(Finding::changed(
            item.field_path("execute_command"),
            "kiln runs each script as root with the interpreter of its #! line (bash without \
             one), its environment set",
        ));
    }
    take("only");
    take("except");

    let mut bodies: Vec<(String, String, Vec<u8>)> = Vec::new();
    if let Some(field) = take("inline") {
        let lines = t::texts(&field).map_err(|reason| Error::ScriptNotFound {
            field: item.field_path("inline"),
            reason,
        })?;
        if lines.iter().all(|l| is_reboot(l)) && !lines.is_empty() {
            match out.steps.last_mut() {
                Some(previous) => {
                    previous.reboot = true;
                    findings.push(Finding::changed(
                        item.path.clone(),
                        format!("a reboot between provisioners: step {} reboots the builder (reboot = true)", previous.name),
                    ));
                }
                None => findings.push(Finding::dropped(
                    item.path.clone(),
                    "a reboot before any step: the builder boots fresh",
                )),
            }
            return finish(item, fields, findings);
        }
        if lines.iter().any(|l| is_reboot(l)) {
            findings.push(Finding::changed(
                item.field_path("inline"),
                "reboots the builder itself: remove its reboot, kiln reboots after the step \
                 (reboot = true)",
            ));
        }
        let mut text = lines.join("\n");
        if is_dynamic(&text) {
            text = text
                .replace(DATE, "$(date -u +%s)")
                .replace(UNIQUE, "${KILN_BUILD_ID}");
            findings.push(Finding::changed(
                item.field_path("inline"),
                "the build's time and unique values are computed on the builder when the step \
                 runs ($(date -u +%s), $KILN_BUILD_ID)",
            ));
        }
        if is_dynamic(&text) {
            return Err(Error::ScriptNotFound {
                field: item.field_path("inline"),
                reason: "holds a value known only when Packer runs".into(),
            });
        }
        let body = format!("#!{shebang}\n{text}\n");
        bodies.push((
            format!("inline-{}", out.steps.len() + 1),
            "inline.sh".to_owned(),
            body.into_bytes(),
        ));
    }
    for key in ["script", "scripts"] {
        let Some(field) = take(key) else { continue };
        let paths = t::texts(&field).map_err(|reason| Error::ScriptNotFound {
            field: item.field_path(key),
            reason: format!("cannot be resolved without running Packer: {reason}"),
        })?;
        for path in paths {
            if is_dynamic(&path) {
                return Err(Error::ScriptNotFound {
                    field: item.field_path(key),
                    reason: "a path known only when Packer runs".into(),
                });
            }
            let resolved = cwd.join(&path);
            let bytes = std::fs::read(&resolved).map_err(|err| Error::ScriptNotFound {
                field: item.field_path(key),
                reason: format!(
                    "{path} ({}): {err}; Packer reads a relative path from the directory it runs \
                     in: run kiln import from there",
                    resolved.display()
                ),
            })?;
            let file = Path::new(&path).file_name().map_or_else(
                || "script.sh".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
            let stem = Path::new(&file)
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            if String::from_utf8_lossy(&bytes).lines().any(is_reboot) {
                findings.push(Finding::changed(
                    item.field_path(key),
                    format!("{path} reboots the builder itself: remove its reboot, kiln reboots after the step (reboot = true)"),
                ));
            }
            bodies.push((stem, file, bytes));
        }
    }
    let count = bodies.len();
    for (i, (name, file, bytes)) in bodies.into_iter().enumerate() {
        let text = String::from_utf8_lossy(&bytes);
        let reboot = (reboots && i + 1 == count) || text.lines().any(is_reboot);
        let mut environment = environment.clone();
        if text.contains("PACKER_BUILD") {
            environment.insert("PACKER_BUILDER_TYPE".into(), "amazon-ebs".into());
            environment.insert("PACKER_BUILD_NAME".into(), build_name.to_owned());
            findings.push(Finding::changed(
                item.path.clone(),
                format!("{file} reads Packer's variables: the step sets PACKER_BUILDER_TYPE and PACKER_BUILD_NAME as Packer did"),
            ));
        }
        let name = unique(
            &step_name(&name),
            out.steps.iter().map(|s| s.name.clone()).collect(),
        );
        let file = unique(&file, out.scripts.keys().cloned().collect());
        out.scripts.insert(file.clone(), bytes);
        out.steps.push(StepSpec {
            name,
            script: file,
            timeout_seconds: timeout,
            reboot,
            environment,
        });
    }
    finish(item, fields, findings)
}

/// The step a recipe gets when no shell provisioner carried over.
pub(super) const PLACEHOLDER: &str = "setup";

/// Adds a step that fails, saying why, until someone writes the real one.
pub(super) fn placeholder(out: &mut Steps) {
    let body = "#!/bin/bash\n\
        # kiln import found no shell provisioner to carry over: write this step.\n\
        echo 'setup.sh is a placeholder from kiln import: write the steps' >&2\n\
        exit 1\n";
    out.scripts
        .insert(format!("{PLACEHOLDER}.sh"), body.as_bytes().to_vec());
    out.steps.push(StepSpec {
        name: PLACEHOLDER.to_owned(),
        script: format!("{PLACEHOLDER}.sh"),
        timeout_seconds: 3600,
        reboot: false,
        environment: BTreeMap::new(),
    });
}

/// A report line for each field of the provisioner left over.
fn finish(
    item: &Item,
    fields: BTreeMap<String, t::Field>,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    for key in fields.keys() {
        let message = SHELL_DROPPED
            .iter()
            .find(|(keys, _)| keys.contains(&key.as_str()));
        findings.push(match message {
            Some((_, message)) => Finding::dropped(item.field_path(key), *message),
            None => Finding::unknown(item.field_path(key)),
        });
    }
    Ok(())
}

/// A command that reboots the machine (`reboot`, `sudo reboot`,
/// `shutdown -r now`, `systemctl reboot`).
fn is_reboot(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().filter(|w| *w != "sudo").collect();
    matches!(
        words.as_slice(),
        ["reboot", ..]
            | ["/sbin/reboot", ..]
            | ["shutdown", "-r", ..]
            | ["systemctl", "reboot", ..]
    )
}

/// A step name kiln takes: letters, digits, `-` and `_`, at most 32.
fn step_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_STEP_NAME - 3)
        .collect();
    if name.is_empty() {
        "step".to_owned()
    } else {
        name
    }
}

/// `wanted`, or with `-2`, `-3`... before its extension until it is not taken.
fn unique(wanted: &str, taken: BTreeSet<String>) -> String {
    if !taken.contains(wanted) {
        return wanted.to_owned();
    }
    let (stem, extension) = wanted
        .rsplit_once('.')
        .map_or((wanted, String::new()), |(s, e)| (s, format!(".{e}")));
    (2..)
        .map(|n| format!("{stem}-{n}{extension}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reboots_are_recognised() {
        for line in [
            "reboot",
            "sudo reboot",
            "  sudo shutdown -r now",
            "sudo systemctl reboot",
        ] {
            assert!(is_reboot(line), "{line}");
        }
        for line in [
            "echo reboot",
            "# reboot later",
            "apt-get install -y reboot-notifier",
        ] {
            assert!(!is_reboot(line), "{line}");
        }
    }

    #[test]
    fn names_are_made_unique_and_valid() {
        assert_eq!(step_name("01 base.setup"), "01-base-setup");
        let taken = BTreeSet::from(["setup.sh".to_owned(), "setup-2.sh".to_owned()]);
        assert_eq!(unique("setup.sh", taken), "setup-3.sh");
        assert_eq!(unique("inline", BTreeSet::new()), "inline");
    }
}
