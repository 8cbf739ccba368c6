//! `kiln resolve` against the emulator, as a person or a script runs it.

use assert_cmd::Command;
use kiln_testkit::{Emulator, RecipeCopy};
use predicates::prelude::*;

#[tokio::test]
async fn kiln_resolve_reports_the_source_and_the_fingerprint() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let expected = copy
        .load()
        .fingerprint(&emulator.seeded.source_ami.parse().expect("ami"));

    Command::cargo_bin("kiln")
        .expect("kiln binary")
        .arg("resolve")
        .arg(copy.dir())
        .envs(emulator.env())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            emulator.seeded.source_ami.as_str(),
        ))
        .stdout(predicate::str::contains(expected.as_str()))
        .stdout(predicate::str::contains("a build is needed"));

    let output = Command::cargo_bin("kiln")
        .expect("kiln binary")
        .args(["resolve", "--output", "json"])
        .arg(copy.dir())
        .envs(emulator.env())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let source: kiln::state::Source = serde_json::from_slice(&output).expect("a Source");
    assert_eq!(source.fingerprint, expected);
    assert_eq!(source.serial.as_deref(), Some("20261118"));
    assert!(!source.skip);

    Command::cargo_bin("kiln")
        .expect("kiln binary")
        .arg("resolve")
        .arg(copy.dir())
        .envs(emulator.env())
        .args(["--source-parameter", "/kiln-emulator/nothing/here"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("error[SourceNotFound]: source not found: parameter /kiln-emulator/nothing/here does not exist"));
}
