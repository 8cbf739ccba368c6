//! `kiln import packer` on templates written the way teams write them
//! (tests/packer/): the recipe each gives, what its report says did not
//! carry over, its fingerprint across imports, the refusals that write
//! nothing, and an imported recipe built end to end in the emulator.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kiln::recipe::{Architecture, Recipe, SourceLookup, VolumeType};
use kiln_testkit::Emulator;
use serde_json::Value;

/// A template under tests/packer/ and the folder Packer runs it from.
struct Case {
    folder: &'static str,
    template: &'static str,
}

const LEGACY: Case = Case {
    folder: "legacy-2019",
    template: "hvm-ebs-18_04-latest.json",
};
const HCL2: Case = Case {
    folder: "hcl2",
    template: "ubuntu.pkr.hcl",
};
const SHARED: Case = Case {
    folder: "shared",
    template: "golden.json",
};
const ANSIBLE: Case = Case {
    folder: "ansible",
    template: "base.pkr.hcl",
};

fn folder(case: &Case) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/packer")
        .join(case.folder)
}

/// Runs `kiln import packer` from the case's folder; its JSON answer.
fn import(case: &Case, out: &Path, extra: &[&str], success: bool) -> Value {
    let assert = kiln_testkit::kiln()
        .current_dir(folder(case))
        .args([
            "import",
            "packer",
            case.template,
            "--output",
            "json",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .assert();
    let assert = if success {
        assert.success()
    } else {
        assert.failure()
    };
    serde_json::from_slice(&assert.get_output().stdout).expect("JSON")
}

/// The report's fields that did not carry over (dropped or unknown).
fn not_carried(answer: &Value) -> BTreeSet<String> {
    answer["report"]
        .as_array()
        .expect("a report")
        .iter()
        .filter(|f| f["outcome"] != "changed")
        .map(|f| f["field"].as_str().expect("a field").to_owned())
        .collect()
}

fn set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|f| (*f).to_owned()).collect()
}

/// Imports `case` twice into two roots under one name: the recipe is valid
/// (`kiln validate`), byte for byte the same, with the same fingerprint.
fn imported(case: &Case) -> (Recipe, Value, tempfile::TempDir) {
    let roots = tempfile::tempdir().expect("tempdir");
    let first = roots.path().join("a/base");
    let second = roots.path().join("b/base");
    let answer = import(case, &first, &[], true);
    assert_eq!(import(case, &second, &[], true)["report"], answer["report"]);
    kiln_testkit::kiln()
        .arg("validate")
        .arg(&first)
        .assert()
        .success();
    let read = |dir: &Path| std::fs::read(dir.join("recipe.toml")).expect("recipe.toml");
    assert_eq!(read(&first), read(&second), "the same recipe file");
    let source = "ami-0a1b2c3d4e5f60001".parse().expect("ami");
    let recipe = Recipe::load(&first).expect("a valid recipe");
    assert_eq!(
        recipe.fingerprint(&source),
        Recipe::load(&second).expect("valid").fingerprint(&source),
        "the fingerprint is stable across imports"
    );
    (recipe, answer, roots)
}

fn script(case: &Case, path: &str) -> Vec<u8> {
    std::fs::read(folder(case).join(path)).expect("the original script")
}

#[test]
fn a_2019_json_template_with_canonicals_filter_becomes_a_recipe() {
    let (recipe, answer, _roots) = imported(&LEGACY);
    assert_eq!(
        not_carried(&answer),
        set(&[
            "builders[0].access_key",
            "builders[0].secret_key",
            "builders[0].region",
            "builders[0].ssh_username",
            "builders[0].tags.Base_AMI_Name",
            "builders[0].tags.Build_Date",
        ])
    );
    let file = &recipe.file;
    assert_eq!(
        file.source.lookup(),
        SourceLookup::Parameter(
            "/aws/service/canonical/ubuntu/server/18.04/stable/current/amd64/hvm/ebs-gp2/ami-id"
        )
    );
    assert_eq!(file.source.owners, ["099720109477"]);
    assert_eq!(file.builder.instance_types, ["t3.small"]);
    assert_eq!(file.image.name, "base-ubuntu-18.04-{date}-{build_id}");
    assert_eq!(
        file.image.description.as_deref(),
        Some("Ubuntu 18.04 base image with the monitoring agent")
    );
    assert!(file.image.ena_required);
    assert_eq!(
        file.image.tags,
        [("OS_Version", "Ubuntu"), ("Release", "18.04")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    );
    assert_eq!(file.steps.len(), 1);
    assert_eq!(file.steps[0].name, "setup");
    assert_eq!(
        recipe.script(&file.steps[0].script),
        script(&LEGACY, "scripts/setup.sh")
    );
}

#[test]
fn an_hcl2_template_with_variables_locals_and_several_provisioners_becomes_a_recipe() {
    let (recipe, answer, _roots) = imported(&HCL2);
    assert_eq!(
        not_carried(&answer),
        set(&[
            "source.amazon-ebs.ubuntu.region",
            "source.amazon-ebs.ubuntu.ssh_username",
            "source.amazon-ebs.ubuntu.tags.BuildStamp",
            "build[0].provisioner[3].pause_before",
            "build[0].post-processor[0] (manifest)",
        ])
    );
    let file = &recipe.file;
    assert_eq!(
        file.source.lookup(),
        SourceLookup::Parameter(
            "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id"
        )
    );
    assert_eq!(file.image.name, "platform-ubuntu-jammy-{date}-{build_id}");
    assert_eq!(file.image.tags["Docker"], "27.3.1", "var.docker_version");
    assert_eq!(file.builder.tags["Name"], "packer-builder", "run_tags");
    assert_eq!(file.builder.root_volume.size_gib, 30);
    assert_eq!(file.builder.root_volume.volume_type, VolumeType::Gp3);
    let names: Vec<&str> = file.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["inline-1", "base", "docker", "cleanup"]);
    let reboots: Vec<bool> = file.steps.iter().map(|s| s.reboot).collect();
    assert_eq!(
        reboots,
        [false, false, true, false],
        "the reboot after docker"
    );
    assert_eq!(
        recipe.script(&file.steps[0].script),
        b"#!/bin/sh -e\ncloud-init status --wait\nsudo apt-get update\n"
    );
    for (step, path) in [
        (1, "scripts/base.sh"),
        (2, "scripts/docker.sh"),
        (3, "scripts/cleanup.sh"),
    ] {
        assert_eq!(recipe.script(&file.steps[step].script), script(&HCL2, path));
    }
    for step in &file.steps[1..3] {
        assert_eq!(step.environment["DEBIAN_FRONTEND"], "noninteractive");
        assert_eq!(step.environment["DOCKER_VERSION"], "27.3.1");
        assert_eq!(step.timeout_seconds, 1200, "timeout = 20m");
    }
    assert!(file.steps[3].environment.is_empty());
}

#[test]
fn a_template_sharing_its_images_becomes_a_recipe_that_distributes_them() {
    let (recipe, answer, _roots) = imported(&SHARED);
    assert_eq!(
        not_carried(&answer),
        set(&[
            "builders[0].region",
            "builders[0].force_delete_snapshot",
            "builders[0].force_deregister",
            "builders[0].iam_instance_profile",
            "builders[0].snapshot_users",
            "builders[0].spot_price",
            "builders[0].ssh_interface",
            "builders[0].ssh_username",
        ])
    );
    let file = &recipe.file;
    assert_eq!(
        file.source.lookup(),
        SourceLookup::Parameter(
            "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id"
        )
    );
    assert_eq!(file.source.architecture, Architecture::Arm64);
    assert_eq!(
        file.builder.instance_types,
        ["c7g.large", "m7g.large", "c6g.large"]
    );
    assert_eq!(
        file.description.as_deref(),
        Some("Golden Ubuntu 24.04 image shared with the workload accounts")
    );
    let distribution = &file.distribution;
    assert_eq!(
        distribution.regions,
        ["eu-west-1"],
        "the build region is no copy"
    );
    assert_eq!(distribution.accounts, ["222222222222", "333333333333"]);
    assert_eq!(
        distribution.kms_keys["eu-west-1"],
        "arn:aws:kms:eu-west-1:111111111111:key/66666666-7777-8888-9999-000000000000"
    );
    assert_eq!(
        file.builder.root_volume.kms_key_id.as_deref(),
        Some("arn:aws:kms:us-east-1:111111111111:key/11111111-2222-3333-4444-555555555555")
    );
}

#[test]
fn a_template_with_other_provisioners_keeps_its_shell_steps_and_reports_the_rest() {
    let (recipe, answer, _roots) = imported(&ANSIBLE);
    assert_eq!(
        not_carried(&answer),
        set(&[
            "source.amazon-ebs.app.region",
            "data.amazon-ami.base.region",
            "source.amazon-ebs.app.deprecate_at",
            "source.amazon-ebs.app.iam_instance_profile",
            "source.amazon-ebs.app.security_group_id",
            "source.amazon-ebs.app.ssh_username",
            "source.amazon-ebs.app.user_data_file",
            "build[0].provisioner[0] (file)",
            "build[0].provisioner[1] (ansible)",
        ])
    );
    let file = &recipe.file;
    assert_eq!(
        file.source.lookup(),
        SourceLookup::NamePattern("acme-base-ubuntu-24.04-*"),
        "the data source's filter, not Canonical's"
    );
    assert_eq!(file.source.owners, ["123456789012"]);
    assert_eq!(
        file.builder.subnet_id.as_deref(),
        Some("subnet-0a1b2c3d4e5f67890")
    );
    assert_eq!(file.builder.security_group_id, None);
    assert_eq!(file.image.name, "acme-app-{date}-{build_id}");
    assert_eq!(
        recipe.script(&file.steps[0].script),
        b"#!/bin/sh -e\nsudo mv /tmp/app.conf /etc/app.conf\nsudo systemctl enable app\n"
    );
}

/// Imports `template` (written into a fresh folder with `files`) and
/// expects the named error, with nothing written.
fn refused(template: &str, files: &[(&str, &str)], extra: &[&str], error: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::write(work.path().join("template.pkr.hcl"), template).expect("write");
    for (path, body) in files {
        let path = work.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, body).expect("write");
    }
    let before: BTreeSet<_> = walk(work.path());
    let assert = kiln_testkit::kiln()
        .current_dir(work.path())
        .args([
            "import",
            "packer",
            "template.pkr.hcl",
            "--out",
            "out/base",
            "--output",
            "json",
        ])
        .args(extra)
        .assert()
        .failure();
    let answer: Value = serde_json::from_slice(&assert.get_output().stdout).expect("JSON");
    assert_eq!(answer["error"], error, "{answer}");
    assert_eq!(walk(work.path()), before, "nothing written");
}

fn walk(dir: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.insert(path);
    }
    found
}

const TWO_SOURCES: &str = r#"
source "amazon-ebs" "amd" { instance_type = "t3.small" }
source "amazon-ebs" "arm" { instance_type = "t4g.small" }
build {
  sources = ["source.amazon-ebs.amd", "source.amazon-ebs.arm"]
  provisioner "shell" { script = "setup.sh" }
}
"#;

#[test]
fn bad_templates_are_refused_by_name_and_nothing_is_written() {
    refused("this is not a template {\n", &[], &[], "TemplateUnreadable");
    refused("", &[], &[], "TemplateUnreadable");
    refused("{ \"builders\": [ }", &[], &[], "TemplateUnreadable");
    refused(
        r#"{"builders": [{"type": "docker", "image": "ubuntu:24.04"}]}"#,
        &[],
        &[],
        "NoAmazonEbsSource",
    );
    refused(
        r#"source "amazon-ebs" "x" { instance_type = "t3.small" }
build {
  sources = ["source.amazon-ebs.x"]
  provisioner "shell" { script = "scripts/missing.sh" }
}"#,
        &[],
        &[],
        "ScriptNotFound",
    );
    let script = [("setup.sh", "#!/bin/bash\necho setup\n")];
    refused(TWO_SOURCES, &script, &[], "NoAmazonEbsSource");
    refused(
        TWO_SOURCES,
        &script,
        &["--source", "mips"],
        "NoAmazonEbsSource",
    );
    refused(TWO_SOURCES, &script, &["--name", "other"], "ImportRefused");
}

#[test]
fn a_source_named_by_source_is_imported_and_an_existing_directory_is_never_overwritten() {
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::write(work.path().join("t.pkr.hcl"), TWO_SOURCES).expect("write");
    std::fs::write(work.path().join("setup.sh"), "#!/bin/bash\necho setup\n").expect("write");
    let run = |source: &str| {
        kiln_testkit::kiln()
            .current_dir(work.path())
            .args([
                "import",
                "packer",
                "t.pkr.hcl",
                "--name",
                "arm-base",
                "--source",
                source,
            ])
            .assert()
    };
    run("arm").success();
    let recipe = Recipe::load(&work.path().join("arm-base")).expect("valid");
    assert_eq!(recipe.file.builder.instance_types, ["t4g.small"]);
    let before = std::fs::read(work.path().join("arm-base/recipe.toml")).expect("read");
    run("amazon-ebs.amd")
        .failure()
        .stderr(predicates::str::contains("error[ImportRefused]"));
    assert_eq!(
        std::fs::read(work.path().join("arm-base/recipe.toml")).expect("read"),
        before
    );
}

#[test]
fn values_known_only_when_packer_runs_are_computed_on_the_builder_or_reported() {
    let work = tempfile::tempdir().expect("tempdir");
    let template = r#"{
      "variables": {"token": "{{env `TOKEN`}}", "subnet": ""},
      "builders": [{"type": "amazon-ebs", "name": "web", "instance_type": "t3.small",
                    "subnet_id": "{{user `subnet`}}"}],
      "provisioners": [{"type": "shell",
        "inline": ["echo {{build_name}} > /etc/role", "date > /etc/built-{{timestamp}}"],
        "environment_vars": ["TOKEN={{user `token`}}", "ROLE={{build_name}}"]}]
    }"#;
    std::fs::write(work.path().join("web.json"), template).expect("write");
    let answer: Value = serde_json::from_slice(
        &kiln_testkit::kiln()
            .current_dir(work.path())
            .args(["import", "packer", "web.json", "--output", "json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .expect("JSON");
    assert_eq!(
        not_carried(&answer),
        set(&["provisioners[0].environment_vars[0]"]),
        "{answer}"
    );
    let recipe = Recipe::load(&work.path().join("web")).expect("valid");
    let step = &recipe.file.steps[0];
    assert_eq!(
        recipe.script(&step.script),
        b"#!/bin/sh -e\necho web > /etc/role\ndate > /etc/built-$(date -u +%s)\n"
    );
    assert_eq!(step.environment.len(), 1);
    assert_eq!(step.environment["ROLE"], "web");
    assert_eq!(
        recipe.file.builder.subnet_id, None,
        "an empty default is unset"
    );

    let hcl = r#"
variable "owner" {
  type = string
}
source "amazon-ebs" "base" {
  instance_type = "t3.small"
  tags = {
    Team  = "platform"
    Owner = var.owner
  }
}
build {
  sources = ["source.amazon-ebs.base"]
  provisioner "shell" {
    inline = ["true"]
  }
}
"#;
    std::fs::write(work.path().join("base.pkr.hcl"), hcl).expect("write");
    let answer: Value = serde_json::from_slice(
        &kiln_testkit::kiln()
            .current_dir(work.path())
            .args(["import", "packer", "base.pkr.hcl", "--output", "json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .expect("JSON");
    assert_eq!(
        not_carried(&answer),
        set(&["source.amazon-ebs.base.tags.Owner"]),
        "{answer}"
    );
    let recipe = Recipe::load(&work.path().join("base")).expect("valid");
    assert_eq!(
        recipe.file.image.tags.len(),
        1,
        "the static tag carries over"
    );
    assert_eq!(recipe.file.image.tags["Team"], "platform");
}

#[tokio::test]
async fn an_imported_recipe_builds_and_the_builder_receives_the_original_scripts() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("docker-base");
    import(&HCL2, &dir, &[], true);
    let emulator = Emulator::start_pipeline(root.path(), &[]).await;

    let output = kiln_testkit::kiln()
        .args([
            "build",
            "--follow",
            "--wait-seconds",
            "0",
            "--output",
            "json",
        ])
        .arg(&dir)
        .envs(emulator.env())
        .env("KILN_STATE_MACHINE_ARN", emulator.pipeline())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let build: Value = serde_json::from_slice(&output).expect("JSON");
    assert_eq!(build["status"], "SUCCEEDED", "{build}");

    let ctx = emulator.context(root.path());
    let commands = ctx
        .ssm()
        .list_commands()
        .send()
        .await
        .expect("ListCommands");
    let sent = |step: &str| -> String {
        let command = commands
            .commands()
            .iter()
            .find(|c| {
                c.comment()
                    .is_some_and(|m| m.split(' ').nth(2) == Some(step))
            })
            .unwrap_or_else(|| panic!("a command for step {step}"));
        command.parameters().expect("parameters")["commands"].join("\n")
    };
    for (step, path) in [
        ("base", "scripts/base.sh"),
        ("docker", "scripts/docker.sh"),
        ("cleanup", "scripts/cleanup.sh"),
    ] {
        let original = String::from_utf8(script(&HCL2, path)).expect("UTF-8");
        let lines = sent(step);
        let body = heredoc(&lines);
        assert_eq!(
            format!("{body}\n"),
            original,
            "step {step} carries {path} exactly"
        );
    }
    assert!(
        sent("docker").contains("DEBIAN_FRONTEND='noninteractive' DOCKER_VERSION='27.3.1'"),
        "the step's environment"
    );
    assert!(!sent("cleanup").contains("DOCKER_VERSION"));
    let builders = kiln_testkit::instances(&ctx, None).await;
    let named: Vec<_> = builders
        .iter()
        .filter_map(|i| kiln_testkit::tag(i.tags(), "Name"))
        .collect();
    assert_eq!(
        named,
        ["packer-builder", "packer-builder"],
        "the builder and the test instance carry run_tags"
    );
}

/// The script a Run Command's lines write to the builder (the body of the
/// quoted here-document).
fn heredoc(lines: &str) -> String {
    let mut lines = lines.lines();
    let open = lines
        .by_ref()
        .find(|l| l.starts_with("cat > \"$script\" <<'"))
        .expect("a here-document");
    let delimiter = open
        .rsplit("<<'")
        .next()
        .expect("delimiter")
        .trim_end_matches('\'');
    lines
        .take_while(|l| *l != delimiter)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_name_pattern_source_is_the_newest_image_of_its_owners_and_architecture() {
    let emulator = Emulator::start().await;
    let root = tempfile::tempdir().expect("tempdir");
    let recipe = |name: &str, pattern: &str, architecture: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("setup.sh"), "#!/bin/bash\ntrue\n").expect("write");
        std::fs::write(
            dir.join("recipe.toml"),
            format!(
                "[source]\nname_pattern = \"{pattern}\"\nowners = [\"099720109477\"]\n\
                 architecture = \"{architecture}\"\n[builder]\ninstance_types = [\"t3.small\"]\n\
                 [[steps]]\nname = \"setup\"\nscript = \"setup.sh\"\n[test]\nscript = \"setup.sh\"\n\
                 [image]\nname = \"x-{{build_id}}\"\n"
            ),
        )
        .expect("write");
        dir
    };
    let resolve = |dir: &Path| {
        kiln_testkit::kiln()
            .args(["resolve", "--output", "json"])
            .arg(dir)
            .envs(emulator.env())
            .assert()
    };
    let noble = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-*-server-*";
    for (name, architecture, expected) in [
        ("amd", "x86_64", "ami-0a1b2c3d4e5f60001"),
        ("arm", "arm64", "ami-0a1b2c3d4e5f60003"),
    ] {
        let output = resolve(&recipe(name, noble, architecture))
            .success()
            .get_output()
            .stdout
            .clone();
        let source: Value = serde_json::from_slice(&output).expect("JSON");
        assert_eq!(
            source["source_ami"], expected,
            "the newest {architecture} image, not the deployment's parameter"
        );
    }
    resolve(&recipe("none", "ubuntu/images/*-plucky-*", "x86_64"))
        .failure()
        .stdout(predicates::str::contains("SourceNotFound"));
    resolve(&recipe("trusty", "ubuntu/images/*trusty*", "x86_64"))
        .failure()
        .stdout(predicates::str::contains("SourceMismatch"));
}
