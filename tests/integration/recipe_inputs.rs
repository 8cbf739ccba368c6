//! Recipe validation of how the source is found (a parameter or a name
//! pattern) and of a step's environment.

use kiln_testkit::{RecipeCopy, fields, with_recipe};

#[test]
fn a_source_is_a_parameter_or_a_name_pattern_and_a_pattern_names_images() {
    let both = with_recipe(|text| {
        text.replace(
            "owners = [\"099720109477\"] # Canonical",
            "owners = [\"099720109477\"]\nname_pattern = \"ubuntu/images/*\"",
        )
    });
    assert_eq!(fields(&both), ["source.name_pattern"], "{both:?}");
    for bad in ["*", "ab", "ubuntu/images/{x}*", "?*?"] {
        let problems = with_recipe(|text| {
            text.replace(
                "parameter = \"/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id\"",
                &format!("name_pattern = \"{bad}\""),
            )
        });
        assert_eq!(
            fields(&problems),
            ["source.name_pattern"],
            "{bad}: {problems:?}"
        );
    }
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        text.replace(
            "parameter = \"/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id\"",
            "name_pattern = \"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*\"",
        )
    });
    assert_eq!(
        copy.load().file.source.lookup(),
        kiln::recipe::SourceLookup::NamePattern(
            "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
        )
    );
}

#[test]
fn a_steps_environment_takes_shell_names_not_kilns_and_stays_small() {
    let with_environment = |environment: &str| {
        with_recipe(|text| {
            text.replace(
                "timeout_seconds = 600\n\n[test]",
                &format!("timeout_seconds = 600\nenvironment = {environment}\n\n[test]"),
            )
        })
    };
    for bad in [
        "{ \"1X\" = \"a\" }",
        "{ \"A-B\" = \"a\" }",
        "{ KILN_STEP = \"a\" }",
        &format!("{{ BIG = \"{}\" }}", "x".repeat(4100)),
    ] {
        let problems = with_environment(bad);
        assert_eq!(
            fields(&problems),
            ["steps[1].environment"],
            "{bad}: {problems:?}"
        );
    }
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        text.replace(
            "timeout_seconds = 600\n\n[test]",
            "timeout_seconds = 600\nenvironment = { DEBIAN_FRONTEND = \"noninteractive\", _X = \"it's\" }\n\n[test]",
        )
    });
    assert_eq!(copy.load().file.steps[1].environment["_X"], "it's");
}

#[test]
fn builder_tags_are_checked_as_image_tags_are() {
    let problems = with_recipe(|text| {
        text.replace(
            "[builder]\n",
            "[builder]\ntags = { \"kiln:recipe\" = \"x\", Name = \"builder\" }\n",
        )
    });
    assert_eq!(
        fields(&problems),
        ["builder.tags.kiln:recipe"],
        "{problems:?}"
    );
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        text.replace("[builder]\n", "[builder]\ntags = { Name = \"builder\" }\n")
    });
    assert_eq!(copy.load().file.builder.tags["Name"], "builder");
}
