//! The `kiln` command against the emulator, as a person or a script runs it:
//! resolve, and promote / images / rollback / history / prune.

use kiln_testkit::{Emulator, RecipeCopy};
use predicates::prelude::*;

#[tokio::test]
async fn kiln_resolve_reports_the_source_and_the_fingerprint() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let expected = copy
        .load()
        .fingerprint(&emulator.seeded.source_ami.parse().expect("ami"));

    kiln_testkit::kiln()
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

    let output = kiln_testkit::kiln()
        .args(["resolve", "--output", "json"])
        .arg(copy.dir())
        .envs(emulator.env())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let source: kiln::pipeline::state::Source = serde_json::from_slice(&output).expect("a Source");
    assert_eq!(source.fingerprint, expected);
    assert_eq!(source.serial.as_deref(), Some("20261118"));
    assert!(!source.skip);

    kiln_testkit::kiln()
        .arg("resolve")
        .arg(copy.dir())
        .envs(emulator.env())
        .args(["--source-parameter", "/kiln-emulator/nothing/here"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("error[SourceNotFound]: source not found: parameter /kiln-emulator/nothing/here does not exist"));
}

/// Runs `kiln ARGS --output json` against `emulator` and parses its answer.
fn kiln_json(emulator: &Emulator, args: &[&str], success: bool) -> serde_json::Value {
    let mut command = kiln_testkit::kiln();
    command
        .args(args)
        .args(["--output", "json"])
        .envs(emulator.env());
    let assert = command.assert();
    let assert = if success {
        assert.success()
    } else {
        assert.failure()
    };
    serde_json::from_slice(&assert.get_output().stdout).expect("JSON")
}

#[tokio::test]
async fn kiln_promotes_lists_and_rolls_back_from_the_command_line() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let a = kiln_testkit::built_image(&ctx, "ubuntu-base", "cli-a", "tested").await;
    let b = kiln_testkit::built_image(&ctx, "ubuntu-base", "cli-b", "tested").await;
    let promote = |image: &str, reason: &str| {
        kiln_json(
            &emulator,
            &[
                "promote",
                "images/ubuntu-base/",
                image,
                "--channel",
                "prod",
                "--reason",
                reason,
                "--actor",
                "ana",
            ],
            true,
        )
    };

    let first = promote(a.as_str(), "first");
    assert_eq!(first["to"], a.as_str());
    assert_eq!(first["changed"], true);
    promote(b.as_str(), "second");

    let images = kiln_json(&emulator, &["images", "ubuntu-base"], true);
    let standing = |image: &str| {
        images
            .as_array()
            .expect("a list")
            .iter()
            .find(|i| i["image_id"] == image)
            .map(|i| (i["channels"].clone(), i["previous"].clone()))
            .expect("listed")
    };
    assert_eq!(
        standing(b.as_str()),
        (serde_json::json!(["prod"]), serde_json::json!([]))
    );
    assert_eq!(
        standing(a.as_str()),
        (serde_json::json!([]), serde_json::json!(["prod"]))
    );

    let back = kiln_json(
        &emulator,
        &[
            "rollback",
            "ubuntu-base",
            "--channel",
            "prod",
            "--reason",
            "bad agent",
            "--actor",
            "ana",
        ],
        true,
    );
    assert_eq!(back["to"], a.as_str());
    let history = kiln_json(
        &emulator,
        &["history", "ubuntu-base", "--channel", "prod"],
        true,
    );
    let actions: Vec<(&str, &str, &str)> = history
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["record"]["action"].as_str().unwrap_or_default(),
                v["record"]["reason"].as_str().unwrap_or_default(),
                v["record"]["actor"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("promote", "first", "ana"),
            ("promote", "second", "ana"),
            ("rollback", "bad agent", "ana")
        ]
    );

    let refused = kiln_json(
        &emulator,
        &[
            "promote",
            "ubuntu-base",
            "ami-0a1b2c3d4e5f60001",
            "--channel",
            "prod",
            "--reason",
            "x",
        ],
        false,
    );
    assert_eq!(refused["error"], "PromotionRefused");

    kiln_testkit::kiln()
        .args(["prune", "ubuntu-base", "--keep", "1", "--dry-run"])
        .envs(emulator.env())
        .assert()
        .success()
        .stdout(
            predicate::str::is_match(format!(r"(?m)^kept +{a} .*on channel prod"))
                .expect("a pattern"),
        )
        // a and b are made in the same second: which is the newest, kept
        // as such, is EC2's tie; b is listed either way.
        .stdout(predicate::str::contains(b.as_str()));
}
