//! An `amazon-ebs` source as a recipe's source, builder, image and
//! distribution (Packer's amazon-ebs builder documentation gives each
//! field), and a report line for each field that does not carry over.

use std::collections::BTreeMap;

use serde_json::Value;

use super::template::{self as t, DATE, Field, Finding, Item, UNIQUE, is_dynamic};
use crate::recipe::naming::template_problems;
use crate::recipe::{BuilderSpec, Distribution, ImageSpec, RootVolume, SourceSpec, VolumeType};
use crate::tags::RESERVED_PREFIXES;

/// The image name a recipe gets when Packer's cannot be carried.
const DEFAULT_NAME: &str = "kiln/{recipe}/{date}-{build_id}";

/// What an amazon-ebs source becomes.
pub(super) struct Parts {
    pub source: SourceSpec,
    pub builder: BuilderSpec,
    pub image: ImageSpec,
    pub distribution: Distribution,
}

/// Fields kiln does differently, with what it does instead.
const DROPPED: &[(&[&str], &str)] = &[
    (
        &[
            "communicator",
            "ssh_username",
            "ssh_password",
            "ssh_port",
            "ssh_timeout",
            "ssh_interface",
            "ssh_keypair_name",
            "ssh_private_key_file",
            "ssh_agent_auth",
            "ssh_pty",
            "ssh_handshake_attempts",
            "ssh_clear_authorized_keys",
            "ssh_bastion_host",
            "ssh_bastion_username",
            "ssh_bastion_private_key_file",
            "temporary_key_pair_name",
            "temporary_key_pair_type",
            "temporary_key_pair_bits",
            "pause_before_connecting",
            "associate_public_ip_address",
            "temporary_security_group_source_cidrs",
            "temporary_security_group_source_public_ip",
            "winrm_username",
            "winrm_password",
            "session_manager_port",
        ],
        "kiln has no SSH: steps run through SSM Run Command, with no inbound rule and no key",
    ),
    (
        &[
            "security_group_id",
            "security_group_ids",
            "security_group_filter",
        ],
        "kiln makes a security group with no inbound rule for each build; Packer's groups \
         usually open SSH, which kiln refuses (builder.security_group_id takes one without)",
    ),
    (
        &[
            "iam_instance_profile",
            "temporary_iam_instance_profile_policy_document",
        ],
        "the builder needs kiln's instance profile (SSM access, output bucket): the \
         deployment's KILN_INSTANCE_PROFILE, or builder.instance_profile",
    ),
    (
        &[
            "access_key",
            "secret_key",
            "token",
            "profile",
            "shared_credentials_file",
            "assume_role",
            "vault_aws_engine",
            "mfa_code",
            "skip_credential_validation",
            "custom_endpoint_ec2",
            "decode_authorization_messages",
        ],
        "kiln takes credentials from the standard AWS environment",
    ),
    (
        &["skip_region_validation"],
        "kiln builds in the region it runs in (AWS_REGION, the deployment's region)",
    ),
    (
        &["force_deregister", "force_delete_snapshot"],
        "every kiln image has its own name ({build_id}); retention retires old images",
    ),
    (
        &["deprecate_at"],
        "retention deprecates, disables and deregisters images nothing uses ([retention])",
    ),
    (
        &["user_data", "user_data_file"],
        "kiln's builder takes no user data: make it a step",
    ),
    (
        &["vpc_id", "vpc_filter", "subnet_filter"],
        "name the subnet (builder.subnet_id); without one, the default VPC's",
    ),
    (
        &[
            "spot_price",
            "spot_tags",
            "spot_tag",
            "fleet_tags",
            "fleet_tag",
            "spot_allocation_strategy",
        ],
        "kiln builds on On-Demand instances",
    ),
    (
        &["run_tag", "run_volume_tag"],
        "give the builder's tags as a map (run_tags): builder.tags",
    ),
    (
        &[
            "snapshot_tags",
            "snapshot_tag",
            "snapshot_users",
            "snapshot_groups",
        ],
        "snapshots follow their image: kiln tags and shares the image",
    ),
    (
        &["ami_groups"],
        "kiln does not make images public: share with accounts or organizational units",
    ),
    (
        &["ami_org_arns"],
        "share with organizational units (distribution.organizational_units): kiln shares no \
         whole organization",
    ),
    (
        &["ami_block_device_mappings"],
        "the image keeps the builder's root volume; other volumes are not carried",
    ),
    (
        &[
            "shutdown_behavior",
            "disable_stop_instance",
            "skip_create_ami",
            "skip_save_build_region",
        ],
        "kiln stops, images and terminates the builder itself",
    ),
    (
        &[
            "availability_zone",
            "placement",
            "tenancy",
            "ebs_optimized",
            "enable_t2_unlimited",
            "enable_unlimited_credits",
            "enable_nitro_enclave",
            "capacity_reservation_preference",
            "capacity_reservation_id",
            "aws_polling",
            "max_retries",
            "sriov_support",
            "boot_mode",
            "tpm_support",
            "uefi_data",
            "imds_support",
            "metadata_options",
            "ami_virtualization_type",
            "ssh_host_key_algorithms",
            "license_specifications",
        ],
        "kiln sets this itself: HVM, IMDSv2 required (image.require_imdsv2), its own placement",
    ),
];

/// Translates `source` (the chosen amazon-ebs source, its build overrides
/// applied) into recipe parts, adding a finding for every field that does
/// not carry over.
pub(super) fn translate(source: &Item, data: &[Item], findings: &mut Vec<Finding>) -> Parts {
    let mut fields = source.fields.clone();
    let mut take = |key: &str| fields.remove(key);
    let at = |key: &str| source.field_path(key);

    let mut spec = SourceSpec::default();
    let filter = match take("source_ami") {
        Some(Ok(Value::String(id))) if is_dynamic(&id) => data
            .iter()
            .find(|d| {
                d.reference.split_once('.').map(|(k, n)| t::data_id(k, n)) == Some(id.clone())
            })
            .map(|d| (d.path.clone(), d.fields.clone())),
        Some(value) => {
            findings.push(Finding::dropped(
                at("source_ami"),
                format!(
                    "a fixed image ({}) gets no patches: kiln builds from the newest image its \
                     source names; set source.parameter or source.name_pattern",
                    t::text(&value).unwrap_or("not static")
                ),
            ));
            None
        }
        None => None,
    };
    let filter = filter.or_else(|| {
        let field = take("source_ami_filter")?;
        let object = t::objects(&field).ok()?.first().map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), Ok(v.clone())))
                .collect::<BTreeMap<String, Field>>()
        })?;
        Some((at("source_ami_filter"), object))
    });
    match filter {
        Some((path, filter)) => super::source::from_filter(&path, &filter, &mut spec, findings),
        None => findings.push(Finding::changed(
            at("source_ami_filter"),
            "no source image filter: the recipe builds from Canonical's Ubuntu 24.04 LTS",
        )),
    }

    let mut builder = BuilderSpec {
        instance_types: Vec::new(),
        subnet_id: None,
        security_group_id: None,
        instance_profile: None,
        root_volume: RootVolume::default(),
        tags: BTreeMap::new(),
    };
    if let Some(field) = take("instance_type") {
        match t::text(&field) {
            Ok(kind) => builder.instance_types.push(kind.to_owned()),
            Err(reason) => findings.push(Finding::dropped(at("instance_type"), reason)),
        }
    }
    if let Some(field) = take("spot_instance_types") {
        match t::texts(&field) {
            Ok(kinds) => {
                for kind in kinds {
                    if !builder.instance_types.contains(&kind) {
                        builder.instance_types.push(kind);
                    }
                }
                findings.push(Finding::changed(
                    at("spot_instance_types"),
                    "kiln builds on On-Demand instances: the types are fallbacks, in order, \
                     when one has no capacity",
                ));
            }
            Err(reason) => findings.push(Finding::dropped(at("spot_instance_types"), reason)),
        }
    }
    if builder.instance_types.is_empty() {
        builder.instance_types.push("t3.small".to_owned());
        findings.push(Finding::changed(
            at("instance_type"),
            "none given: t3.small",
        ));
    }
    if let Some(field) = take("subnet_id") {
        match t::text(&field) {
            Ok(subnet) => builder.subnet_id = Some(subnet.to_owned()),
            Err(reason) => findings.push(Finding::dropped(at("subnet_id"), reason)),
        }
    }
    root_volume(&mut builder.root_volume, &mut take, &at, findings);
    if let Some(field) = take("run_tags") {
        tags_into(&field, &at("run_tags"), &mut builder.tags, findings);
    }
    if let Some(field) = take("run_volume_tags") {
        tags_into(&field, &at("run_volume_tags"), &mut builder.tags, findings);
        findings.push(Finding::changed(
            at("run_volume_tags"),
            "kiln tags the builder and its volumes alike (builder.tags)",
        ));
    }

    let mut image = ImageSpec {
        name: DEFAULT_NAME.to_owned(),
        description: None,
        ena_required: true,
        timeout_seconds: 4 * 3600,
        keep_failed: false,
        require_imdsv2: true,
        tags: BTreeMap::new(),
    };
    if let Some(field) = take("ami_name") {
        image.name = image_name(&field, &at("ami_name"), findings);
    }
    if let Some(field) = take("ami_description") {
        match t::text(&field) {
            Ok(text) if !is_dynamic(text) => image.description = Some(text.to_owned()),
            Ok(_) => findings.push(Finding::dropped(
                at("ami_description"),
                "holds the build's time or a unique value: kiln's descriptions are static \
                 (the image's tags carry its build)",
            )),
            Err(reason) => findings.push(Finding::dropped(at("ami_description"), reason)),
        }
    }
    if let Some(field) = take("ena_support") {
        match t::flag(&field) {
            Ok(ena) => image.ena_required = ena,
            Err(reason) => findings.push(Finding::dropped(at("ena_support"), reason)),
        }
    }
    if let Some(field) = take("tags") {
        tags_into(&field, &at("tags"), &mut image.tags, findings);
    }

    let distribution = super::share::distribution(&mut take, &at, &builder.root_volume, findings);

    for (key, _) in fields {
        let message = DROPPED
            .iter()
            .find(|(keys, _)| keys.contains(&key.as_str()))
            .map(|(_, message)| *message);
        findings.push(match message {
            Some(message) => Finding::dropped(source.field_path(&key), message),
            None => Finding::unknown(source.field_path(&key)),
        });
    }
    Parts {
        source: spec,
        builder,
        image,
        distribution,
    }
}

/// `launch_block_device_mappings` (the root device's size and type),
/// `encrypt_boot` and `kms_key_id`.
fn root_volume(
    volume: &mut RootVolume,
    take: &mut impl FnMut(&str) -> Option<Field>,
    at: &impl Fn(&str) -> String,
    findings: &mut Vec<Finding>,
) {
    if let Some(field) = take("launch_block_device_mappings") {
        let path = at("launch_block_device_mappings");
        match t::objects(&field) {
            Ok(mappings) => {
                let root = mappings.iter().position(|m| {
                    matches!(
                        m.get("device_name").and_then(Value::as_str),
                        Some("/dev/sda1" | "/dev/xvda")
                    )
                });
                for (i, mapping) in mappings.iter().enumerate() {
                    if Some(i) != root {
                        findings.push(Finding::dropped(
                            format!("{path}[{i}]"),
                            "kiln builds on the root volume only: add other volumes where the \
                             instances launch",
                        ));
                        continue;
                    }
                    let get = |k: &str| mapping.get(k).cloned().map(Ok);
                    if let Some(size) = get("volume_size").and_then(|f| t::number(&f).ok()) {
                        volume.size_gib = i32::try_from(size).unwrap_or(i32::MAX);
                    }
                    match get("volume_type").map(|f| t::text(&f).map(str::to_owned)) {
                        Some(Ok(kind)) => match volume_type(&kind) {
                            Some(kind) => volume.volume_type = kind,
                            None => findings.push(Finding::changed(
                                format!("{path}[{i}].volume_type"),
                                format!("{kind} is not a type kiln builds on: gp3"),
                            )),
                        },
                        Some(Err(reason)) => findings
                            .push(Finding::dropped(format!("{path}[{i}].volume_type"), reason)),
                        None => {}
                    }
                    if let Some(Ok(key)) = get("kms_key_id").map(|f| t::text(&f).map(str::to_owned))
                    {
                        volume.kms_key_id = Some(key);
                    }
                    for key in ["iops", "throughput"] {
                        if mapping.contains_key(key) {
                            findings.push(Finding::dropped(
                                format!("{path}[{i}].{key}"),
                                "kiln sets the root volume's size and type only",
                            ));
                        }
                    }
                }
            }
            Err(reason) => findings.push(Finding::dropped(path, reason)),
        }
    }
    match take("encrypt_boot").map(|field| t::flag(&field)) {
        Some(Ok(true)) => {}
        Some(_) => findings.push(Finding::changed(
            at("encrypt_boot"),
            "kiln encrypts every image and its snapshots",
        )),
        None => findings.push(Finding::changed(
            at("encrypt_boot"),
            "not set: Packer encrypted an image only when its source was or the account \
             encrypts EBS by default; kiln encrypts every image and its snapshots (the \
             account's default EBS key unless kms_key_id names one)",
        )),
    }
    if let Some(field) = take("kms_key_id") {
        match t::text(&field) {
            Ok(key) => volume.kms_key_id = Some(key.to_owned()),
            Err(reason) => findings.push(Finding::dropped(at("kms_key_id"), reason)),
        }
    }
}

fn volume_type(kind: &str) -> Option<VolumeType> {
    match kind {
        "gp3" => Some(VolumeType::Gp3),
        "gp2" => Some(VolumeType::Gp2),
        "io1" => Some(VolumeType::Io1),
        "io2" => Some(VolumeType::Io2),
        _ => None,
    }
}

/// `ami_name` as a kiln name template: the build's time is `{date}`, a unique
/// value `{build_id}`, and `{build_id}` is added where missing (every kiln
/// image name is unique).
fn image_name(field: &Field, path: &str, findings: &mut Vec<Finding>) -> String {
    let name = match t::text(field) {
        Ok(name) => name,
        Err(reason) => {
            findings.push(Finding::changed(
                path,
                format!("{reason}: named {DEFAULT_NAME}"),
            ));
            return DEFAULT_NAME.to_owned();
        }
    };
    if name.contains(DATE) {
        findings.push(Finding::changed(
            path,
            "the build's time is kiln's {date}, the day the build started (YYYYMMDD)",
        ));
    }
    let mut template = name.replace(DATE, "{date}").replace(UNIQUE, "{build_id}");
    if !template.contains("{build_id}") {
        template.push_str("-{build_id}");
        findings.push(Finding::changed(
            path,
            "-{build_id} added: every kiln image name is unique to its build",
        ));
    }
    let problems = template_problems(&template);
    if is_dynamic(&template) || !problems.is_empty() {
        findings.push(Finding::changed(
            path,
            format!("{}: named {DEFAULT_NAME}", problems.join("; ")),
        ));
        return DEFAULT_NAME.to_owned();
    }
    template
}

/// The static tags of a tags field into `tags`; a tag known only when
/// Packer runs, or with a reserved key, is a report line.
fn tags_into(
    field: &Field,
    path: &str,
    tags: &mut BTreeMap<String, String>,
    findings: &mut Vec<Finding>,
) {
    let map = match t::string_map(field) {
        Ok(map) => map,
        Err(reason) => {
            findings.push(Finding::dropped(path, reason));
            return;
        }
    };
    for (key, value) in map {
        let tag = format!("{path}.{key}");
        if RESERVED_PREFIXES.iter().any(|p| key.starts_with(p)) {
            findings.push(Finding::dropped(tag, "kiln: and aws: keys are reserved"));
        } else if is_dynamic(&value) || is_dynamic(&key) {
            findings.push(Finding::dropped(
                tag,
                "is known only when Packer runs (the build's time, its source, the \
                 environment): kiln tags each image with its kiln:build-id and kiln:source-ami, \
                 and EC2 records its creation date",
            ));
        } else {
            tags.insert(key, value);
        }
    }
}
