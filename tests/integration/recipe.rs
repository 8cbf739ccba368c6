//! Recipe validation: every kind of malformed recipe gives `InvalidRecipe`
//! naming each problem's field, through the library and through `kiln validate`.

use kiln::Error;
use kiln::error::Problem;
use kiln::recipe::Recipe;
use kiln_testkit::{RecipeCopy, fields, with_recipe};
use predicates::prelude::*;

fn problems(copy: &RecipeCopy) -> Vec<Problem> {
    copy.problems()
}

#[test]
fn the_example_recipe_is_valid() {
    let recipe = RecipeCopy::ubuntu_base().load();
    assert_eq!(recipe.name.as_str(), "ubuntu-base");
    let steps: Vec<_> = recipe
        .file
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.reboot))
        .collect();
    assert_eq!(steps, [("setup", true), ("cleanup", false)]);
    assert_eq!(
        recipe.scripts.len(),
        3,
        "setup.sh, cleanup.sh and test.sh are read"
    );
}

#[test]
fn a_toml_syntax_error_names_the_file_and_line() {
    let problems = with_recipe(|text| text.replace("[builder]", "[builder"));
    assert_eq!(fields(&problems), ["recipe.toml"]);
    assert!(problems[0].message.contains("line"), "{problems:?}");
}

#[test]
fn a_typo_is_an_unknown_field_with_its_path() {
    let problems = with_recipe(|text| text.replace("instance_types", "instance_type"));
    assert_eq!(fields(&problems), ["builder.instance_type"], "{problems:?}");
    assert!(
        problems[0]
            .message
            .starts_with("unknown field `instance_type`, expected one of"),
        "{problems:?}"
    );
}

#[test]
fn a_missing_section_and_an_unknown_section_are_both_reported() {
    let problems = with_recipe(|text| {
        let cut = text.find("[image]").expect("image section");
        format!("{}\n[extras]\nfoo = 1\n", &text[..cut])
    });
    let fields = fields(&problems);
    assert!(fields.contains(&"image"), "{problems:?}");
    assert!(fields.contains(&"extras"), "{problems:?}");
}

#[test]
fn a_wrong_type_names_the_nested_field() {
    let problems = with_recipe(|text| text.replace("size_gib = 16", "size_gib = \"big\""));
    assert_eq!(
        fields(&problems),
        ["builder.root_volume.size_gib"],
        "{problems:?}"
    );
}

#[test]
fn every_bad_value_is_reported_at_once() {
    let problems = with_recipe(|text| {
        text.replace(
            r#"["t3.small", "t3a.small", "m5.large"]"#,
            r#"["t3.small", "T3 small", "t3.small"]"#,
        )
        .replace(r#"owners = ["099720109477"]"#, r#"owners = ["canonical"]"#)
        .replace("size_gib = 16", "size_gib = 4")
        .replace(
            "timeout_seconds = 600\n\n[test]",
            "timeout_seconds = 0\n\n[test]",
        )
        .replace("name = \"cleanup\"", "name = \"setup\"")
        .replace(
            "encrypted = true",
            "encrypted = false, kms_key_id = \"alias/kiln\"",
        )
        .replace("[builder]", "[builder]\nsubnet_id = \"subnet-nothex\"")
    });
    let fields = fields(&problems);
    for expected in [
        "builder.instance_types",
        "source.owners",
        "builder.root_volume.size_gib",
        "builder.root_volume.encrypted",
        "builder.subnet_id",
        "steps[1].timeout_seconds",
        "steps[1].name",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {problems:#?}"
        );
    }
    let instance_type_problems = problems
        .iter()
        .filter(|p| p.field == "builder.instance_types")
        .count();
    assert_eq!(
        instance_type_problems, 2,
        "a malformed type and a duplicate: {problems:#?}"
    );
}

#[test]
fn scripts_must_exist_inside_the_recipe_and_not_be_empty() {
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        text.replace("script = \"setup.sh\"", "script = \"../../etc/passwd\"")
            .replace("script = \"test.sh\"", "script = \"missing.sh\"")
    });
    copy.edit("cleanup.sh", |_| "\n  \n".to_owned());
    let problems = problems(&copy);
    let fields = fields(&problems);
    assert_eq!(
        fields,
        ["steps[0].script", "steps[1].script", "test.script"],
        "{problems:#?}"
    );
    assert!(problems[0].message.contains("inside the recipe directory"));
    assert!(problems[1].message.contains("empty"));
    assert!(problems[2].message.contains("missing.sh"));
}

#[test]
fn the_image_name_template_and_tags_are_checked() {
    let problems = with_recipe(|text| {
        text.replace(
            "name = \"kiln/{recipe}/{date}-{build_id}\"",
            "name = \"kiln:{recipe}-{when}\"",
        )
        .replace("Team = \"platform\"", "\"kiln:stage\" = \"tested\"")
    });
    let image_problems: Vec<_> = problems
        .iter()
        .filter(|p| p.field == "image.name")
        .collect();
    assert_eq!(
        image_problems.len(),
        3,
        "unknown placeholder, no build_id, ':' not allowed: {problems:#?}"
    );
    assert!(
        fields(&problems).contains(&"image.tags.kiln:stage"),
        "{problems:#?}"
    );
}

#[test]
fn the_directory_name_must_be_a_recipe_name() {
    let copy = RecipeCopy::ubuntu_base();
    let renamed = copy.root.path().join("Ubuntu_Base");
    std::fs::rename(copy.dir(), &renamed).expect("rename");
    match Recipe::load(&renamed) {
        Err(Error::InvalidRecipe { problems, .. }) => assert_eq!(fields(&problems), ["directory"]),
        other => panic!("expected InvalidRecipe, got {other:?}"),
    }
}

#[test]
fn kiln_validate_passes_the_example_and_lists_every_problem_of_a_broken_one() {
    kiln_testkit::kiln()
        .args(["validate", "images/ubuntu-base"])
        .current_dir(kiln_testkit::repo())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "recipe ubuntu-base is valid: 2 step(s) (setup, cleanup)",
        ));

    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        text.replace("size_gib = 16", "size_gib = 2")
            .replace("\"t3a.small\", ", "")
    });
    copy.edit("recipe.toml", |text| {
        text.replace("owners = [\"099720109477\"]", "owners = []")
    });
    kiln_testkit::kiln()
        .arg("validate")
        .arg(copy.dir())
        .assert()
        .failure()
        .stderr(predicate::str::contains("error[InvalidRecipe]"))
        .stderr(predicate::str::contains(
            "builder.root_volume.size_gib: must be between 8 and 16384 GiB",
        ))
        .stderr(predicate::str::contains(
            "source.owners: must list at least one trusted account",
        ));

    let output = kiln_testkit::kiln()
        .args(["validate", "--output", "json"])
        .arg(copy.dir())
        .assert()
        .failure()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&output).expect("JSON");
    assert_eq!(json["error"], "InvalidRecipe");
    assert_eq!(json["problems"].as_array().map(Vec::len), Some(2), "{json}");
}

#[test]
fn a_release_policy_is_read_in_order_and_checked_with_the_rest() {
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        text + r#"
[[release]]
channel = "staging"

[[release]]
channel = "prod"
soak_hours = 24
alarms = ["web-5xx", "web-latency"]
"#
    });
    let release = copy.load().file.release;
    let stages: Vec<_> = release
        .iter()
        .map(|s| (s.channel.as_str(), s.soak_hours, s.alarms.len()))
        .collect();
    assert_eq!(stages, [("staging", 0, 0), ("prod", 24, 2)]);
    assert!(
        RecipeCopy::ubuntu_base().load().file.release.is_empty(),
        "no policy: images are promoted by hand"
    );

    let problems = with_recipe(|text| {
        text + r#"
[[release]]
channel = "Prod"

[[release]]
channel = "staging"
soak_hours = 721
alarms = ["", "web-5xx", "web-5xx"]

[[release]]
channel = "staging"
gates = []
"#
    });
    let release: Vec<_> = problems
        .iter()
        .filter(|p| p.field.starts_with("release"))
        .map(|p| p.field.as_str())
        .collect();
    assert_eq!(
        release,
        ["release[0].channel"],
        "a bad channel fails the section's parse: {problems:#?}"
    );

    let problems = with_recipe(|text| {
        text + r#"
[[release]]
channel = "staging"
soak_hours = 721
alarms = ["", "web-5xx", "web-5xx"]

[[release]]
channel = "staging"
"#
    });
    assert_eq!(
        fields(&problems),
        [
            "release[0].soak_hours",
            "release[0].alarms",
            "release[0].alarms",
            "release[1].channel"
        ],
        "{problems:#?}"
    );
}

#[test]
fn a_stage_watches_at_most_the_ten_alarms_an_instance_refresh_takes() {
    let alarms = |n: usize| {
        (0..n)
            .map(|i| format!("\"alarm-{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ten = RecipeCopy::ubuntu_base();
    ten.edit("recipe.toml", |text| {
        format!(
            "{text}\n[[release]]\nchannel = \"prod\"\nalarms = [{}]\n",
            alarms(10)
        )
    });
    let recipe = Recipe::load(&ten.dir()).expect("ten alarms are valid");
    assert_eq!(recipe.file.release[0].alarms.len(), 10);
    let eleven = with_recipe(|text| {
        format!(
            "{text}\n[[release]]\nchannel = \"prod\"\nalarms = [{}]\n",
            alarms(11)
        )
    });
    assert_eq!(fields(&eleven), ["release[0].alarms"], "{eleven:#?}");
    assert!(
        eleven[0].message.contains("10") && eleven[0].message.contains("instance refresh"),
        "{eleven:#?}"
    );
}

#[test]
fn the_fingerprint_follows_what_is_built_not_where_it_goes() {
    let source = "ami-0123456789abcdef0".parse().expect("ami");
    let copy = RecipeCopy::ubuntu_base();
    let before = copy.load().fingerprint(&source);

    copy.edit("recipe.toml", |text| {
        format!("# a comment\n{text}\n[[release]]\nchannel = \"prod\"\nsoak_hours = 24\n")
    });
    assert_eq!(
        copy.load().fingerprint(&source),
        before,
        "a release policy or a comment rebuilds nothing"
    );

    copy.edit("recipe.toml", |text| {
        text.replace("size_gib = 16", "size_gib = 20")
    });
    assert_ne!(
        copy.load().fingerprint(&source),
        before,
        "a builder change rebuilds"
    );
}

#[test]
fn a_source_parameter_must_be_one_of_aws_public_parameters() {
    let problems = with_recipe(|text| {
        text.replace(
            "parameter = \"/aws/service/canonical/",
            "parameter = \"/team/mirror/canonical/",
        )
    });
    assert_eq!(fields(&problems), ["source.parameter"], "{problems:?}");
    assert!(
        problems[0].message.contains("/aws/service/")
            && problems[0].message.contains("KILN_SOURCE_PARAMETER"),
        "{problems:?}"
    );
}

#[test]
fn a_recipe_may_name_its_instance_profile_or_use_the_deployments() {
    let copy = RecipeCopy::ubuntu_base();
    let recipe = copy.load();
    assert_eq!(recipe.file.builder.instance_profile, None);
    let deployed = kiln::aws::Settings {
        instance_profile: Some("kiln-eu-west-1-builder".into()),
        ..kiln::aws::Settings::default()
    };
    assert_eq!(
        deployed
            .instance_profile(&recipe)
            .expect("the deployment's"),
        "kiln-eu-west-1-builder"
    );
    let err = kiln::aws::Settings::default()
        .instance_profile(&recipe)
        .expect_err("no profile anywhere");
    assert_eq!(err.name(), "InvalidInput");
    assert!(err.to_string().contains("KILN_INSTANCE_PROFILE"), "{err}");

    copy.edit("recipe.toml", |text| {
        text.replace(
            "[builder]\n",
            "[builder]\ninstance_profile = \"team-builder\"\n",
        )
    });
    assert_eq!(
        deployed
            .instance_profile(&copy.load())
            .expect("the recipe's"),
        "team-builder"
    );
    copy.edit("recipe.toml", |text| {
        text.replace("\"team-builder\"", "\"not a profile!\"")
    });
    assert_eq!(fields(&problems(&copy)), ["builder.instance_profile"]);
}

const EU_KEY: &str = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const HOME_KEY: &str =
    "arn:aws:kms:us-east-1:111111111111:key/0000abcd-12ab-34cd-56ef-1234567890ab";

/// The example recipe with its root volume encrypted with `HOME_KEY` and
/// `distribution` appended.
fn distributed(distribution: &str) -> RecipeCopy {
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        let text = text.replace(
            "encrypted = true }",
            &format!("encrypted = true, kms_key_id = \"{HOME_KEY}\" }}"),
        );
        format!("{text}\n[distribution]\n{distribution}\n")
    });
    copy
}

#[test]
fn a_distribution_is_read_and_is_not_part_of_the_fingerprint() {
    let source = "ami-0123456789abcdef0".parse().expect("ami");
    let plain = distributed("");
    let before = plain.load();
    assert_eq!(before.file.distribution, Default::default());
    let copy = distributed(&format!(
        "regions = [\"eu-west-1\", \"us-west-2\"]\naccounts = [\"210987654321\"]\n\
         organizational_units = [\"arn:aws:organizations::111111111111:ou/o-abcdefghij/ou-abcd-12345678\"]\n\
         kms_keys = {{ eu-west-1 = \"{EU_KEY}\", us-west-2 = \"arn:aws:kms:us-west-2:111111111111:alias/kiln\" }}"
    ));
    let recipe = copy.load();
    let distribution = &recipe.file.distribution;
    assert_eq!(distribution.regions, ["eu-west-1", "us-west-2"]);
    assert_eq!(distribution.accounts, ["210987654321"]);
    assert_eq!(distribution.organizational_units.len(), 1);
    assert_eq!(distribution.kms_keys["eu-west-1"], EU_KEY);
    assert_eq!(
        recipe.fingerprint(&source),
        before.fingerprint(&source),
        "adding regions or accounts rebuilds nothing"
    );
}

#[test]
fn a_bad_distribution_is_refused_with_each_problem_named() {
    let copy = distributed(&format!(
        "regions = [\"eu-west-1\", \"eu-west-9\", \"eu-west-1\", \"us-west-2\"]\n\
         accounts = [\"21098765432\", \"210987654321\", \"210987654321\"]\n\
         organizational_units = [\"arn:aws:organizations::111111111111:ou/o-abc/ou-def\"]\n\
         kms_keys = {{ eu-west-1 = \"arn:aws:kms:us-west-2:111111111111:key/x\", \
         ap-south-1 = \"{EU_KEY}\" }}"
    ));
    let problems = problems(&copy);
    assert_eq!(
        fields(&problems),
        [
            "distribution.regions",
            "distribution.regions",
            "distribution.accounts",
            "distribution.accounts",
            "distribution.organizational_units",
            "distribution.kms_keys.ap-south-1",
            "distribution.kms_keys.ap-south-1",
            "distribution.kms_keys.eu-west-1",
            "distribution.kms_keys.us-west-2",
        ],
        "{problems:#?}"
    );
    assert!(
        problems[0]
            .message
            .contains("\"eu-west-9\" is not a region")
    );
    assert!(
        problems[1]
            .message
            .contains("\"eu-west-1\" is listed twice")
    );
    assert!(problems[2].message.contains("12-digit"));
    assert!(problems[5].message.contains("not in distribution.regions"));
    assert!(
        problems[7]
            .message
            .contains("not a KMS key ARN in eu-west-1")
    );
    // us-west-2 has no key, and the image is shared: its default key cannot be.
    assert!(
        problems[8].message.contains("cannot be")
            && problems[8].message.contains("customer managed key"),
        "{problems:#?}"
    );
}

#[test]
fn an_image_encrypted_with_the_default_ebs_key_is_not_shared() {
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        text + "\n[distribution]\naccounts = [\"210987654321\"]\n"
    });
    let problems = problems(&copy);
    assert_eq!(fields(&problems), ["builder.root_volume.kms_key_id"]);
    assert!(
        problems[0].message.contains("default EBS key")
            && problems[0].message.contains("key policy"),
        "{problems:#?}"
    );
    let managed = with_recipe(|text| {
        text.replace(
            "encrypted = true }",
            "encrypted = true, kms_key_id = \"alias/aws/ebs\" }",
        ) + "\n[distribution]\norganizational_units = [\"arn:aws:organizations::111111111111:ou/o-abcdefghij/ou-abcd-12345678\"]\n"
    });
    assert_eq!(fields(&managed), ["builder.root_volume.kms_key_id"]);
    assert!(managed[0].message.contains("aws/ebs"), "{managed:#?}");
    // Copies alone, not shared, may use each region's default key.
    let copies = RecipeCopy::ubuntu_base();
    copies.edit("recipe.toml", |text| {
        text + "\n[distribution]\nregions = [\"eu-west-1\"]\n"
    });
    assert_eq!(copies.load().file.distribution.regions, ["eu-west-1"]);
}

#[test]
fn pointer_roles_name_one_role_per_account_the_images_are_shared_with() {
    let good = distributed(
        "accounts = [\"210987654321\"]\n\
         pointer_roles = [\"arn:aws:iam::210987654321:role/kiln-pointers\"]",
    );
    assert_eq!(
        good.load().file.distribution.pointer_roles,
        ["arn:aws:iam::210987654321:role/kiln-pointers"]
    );
    let bad = distributed(
        "accounts = [\"210987654321\"]\n\
         pointer_roles = [\"arn:aws:iam::210987654321:user/kiln\", \
         \"arn:aws:iam::210987654321:role/a\", \"arn:aws:iam::210987654321:role/b\", \
         \"arn:aws:iam::333333333333:role/kiln-pointers\"]",
    );
    let problems = problems(&bad);
    assert_eq!(
        fields(&problems),
        ["distribution.pointer_roles"; 3],
        "{problems:#?}"
    );
    assert!(problems[0].message.contains("not an IAM role ARN"));
    assert!(problems[1].message.contains("one per account"));
    assert!(
        problems[2].message.contains("333333333333") && problems[2].message.contains("not shared"),
        "{problems:#?}"
    );
    // Shared with an organizational unit, any member account may hold pointers.
    let by_unit = distributed(
        "organizational_units = [\"arn:aws:organizations::111111111111:ou/o-abcdefghij/ou-abcd-12345678\"]\n\
         pointer_roles = [\"arn:aws:iam::333333333333:role/kiln-pointers\"]",
    );
    assert_eq!(by_unit.load().file.distribution.pointer_roles.len(), 1);
}

#[test]
fn retention_settings_are_read_checked_and_not_part_of_the_fingerprint() {
    let source = "ami-0123456789abcdef0".parse().expect("ami");
    let copy = RecipeCopy::ubuntu_base();
    let before = copy.load();
    assert_eq!(before.file.retention.grace_days, 14);
    assert_eq!(before.file.retention.used_within_days, 30);
    copy.edit("recipe.toml", |text| {
        format!("{text}\n[retention]\ngrace_days = 7\nused_within_days = 90\n")
    });
    let recipe = copy.load();
    assert_eq!(recipe.file.retention.grace_days, 7);
    assert_eq!(recipe.file.retention.used_within_days, 90);
    assert_eq!(
        recipe.fingerprint(&source),
        before.fingerprint(&source),
        "how long images live rebuilds nothing"
    );

    let bad = RecipeCopy::ubuntu_base();
    bad.edit("recipe.toml", |text| {
        format!("{text}\n[retention]\ngrace_days = 0\nused_within_days = 3651\n")
    });
    assert_eq!(
        fields(&problems(&bad)),
        ["retention.grace_days", "retention.used_within_days"]
    );
}
