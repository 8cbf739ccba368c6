//! One region of one account: its instances folded into a tally, the facts
//! of the images they run, and each recipe's pointer, with the minimum of
//! calls (see the module above).

use std::collections::{HashMap, HashSet};

use super::report::{ImageRow, PointerRow, Problem, ProblemKind, RegionAudit};
use super::scope::{IMAGE_BATCH, INSTANCE_PAGE, POINTER_BATCH, Target};
use super::tally::{self, ImageFacts, Pointer, Tally};
use crate::aws::images;
use crate::aws::instances::live_state_filter;
use crate::aws::sdk::Answer;
use crate::channels::pointers::pointer_name;
use crate::error::Result;
use crate::ids::{Channel, RecipeName};

/// The clients one region's audit uses.
#[derive(Debug, Clone)]
pub struct RegionClients {
    /// EC2 of the audited account, in the region.
    pub ec2: aws_sdk_ec2::Client,
    /// EC2 of the home account, in the region: pointer images and images the
    /// home account shared (their tags are the home account's).
    pub home_ec2: aws_sdk_ec2::Client,
    /// SSM of the home account, in the region: the pointers.
    pub home_ssm: aws_sdk_ssm::Client,
}

/// What an image no client could describe is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    /// Gone: the audited account itself describes its instances' images, so
    /// one it cannot describe is deregistered.
    Deregistered,
    /// Not kiln's: described from the home account only (the AWS Config
    /// path), an image it cannot see is another account's private image
    /// (kiln's own are always visible to it), or gone.
    Foreign,
}

/// Audits one region of one account with `clients`.
pub async fn audit_region(clients: &RegionClients, target: Target<'_>) -> Result<RegionAudit> {
    let tally = instances(&clients.ec2, target.service_tag).await?;
    classify_region(clients, target, &tally, Unseen::Deregistered).await
}

/// Classifies the images of `tally` (one region of one account) against
/// the pointers, describing each image once with `clients`.
pub async fn classify_region(
    clients: &RegionClients,
    target: Target<'_>,
    tally: &Tally,
    undescribed: Unseen,
) -> Result<RegionAudit> {
    let ids = tally.images();
    let mut facts = describe(&clients.ec2, &ids).await?;
    if target.account != target.home_account {
        let shared: Vec<&str> = facts
            .iter()
            .filter(|(_, f)| f.recipe.is_none() && f.owner.as_deref() == Some(target.home_account))
            .map(|(id, _)| id.as_str())
            .collect();
        let home_view = describe(&clients.home_ec2, &shared).await?;
        facts.extend(home_view);
    }
    let recipes: Vec<&RecipeName> = facts
        .values()
        .filter_map(|f| f.recipe.as_ref())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let named = pointers(&clients.home_ssm, &recipes, target.channel).await?;
    let unseen: Vec<&str> = named
        .values()
        .filter(|(image, _)| !facts.contains_key(image))
        .map(|(image, _)| image.as_str())
        .collect();
    let unseen_facts = describe(&clients.home_ec2, &unseen).await?;
    let mut problems = Vec::new();
    let mut pointer_rows = Vec::new();
    let mut by_recipe = HashMap::new();
    for recipe in recipes {
        let pointer = named.get(recipe);
        let created = pointer.and_then(|(image, _)| {
            facts
                .get(image)
                .or_else(|| unseen_facts.get(image))
                .and_then(|f| f.created)
        });
        pointer_rows.push(PointerRow {
            account: target.home_account.to_owned(),
            region: target.region.to_owned(),
            recipe: recipe.clone(),
            channel: target.channel.clone(),
            image_id: pointer.map(|(image, _)| image.clone()),
            created,
            moved: pointer.and_then(|(_, moved)| *moved),
        });
        match pointer {
            Some((image, _)) => {
                by_recipe.insert(
                    recipe.clone(),
                    Pointer {
                        image_id: image.clone(),
                        created,
                    },
                );
            }
            None => problems.push(Problem {
                account: Some(target.home_account.to_owned()),
                region: Some(target.region.to_owned()),
                kind: ProblemKind::NoPointer,
                message: format!(
                    "recipe {recipe} has no {} pointer ({}) in {}: its images are reported as unpromoted",
                    target.channel,
                    pointer_name(recipe, target.channel),
                    target.region
                ),
            }),
        }
    }
    pointer_rows.sort_by(|a, b| a.recipe.cmp(&b.recipe));
    let now = jiff::Timestamp::now();
    let images = ids
        .iter()
        .map(|id| {
            let foreign = ImageFacts::default();
            let image = match (facts.get(*id), undescribed) {
                (None, Unseen::Foreign) => Some(&foreign),
                (found, _) => found,
            };
            ImageRow::new(
                target,
                id,
                image,
                tally::classify(id, image, &by_recipe, target.channel),
                tally.services(id),
                now,
            )
        })
        .collect();
    Ok(RegionAudit {
        instances: tally.instances,
        builders: tally.builders,
        images,
        pointers: pointer_rows,
        problems,
    })
}

/// Every live instance of the region, folded into a tally page by page.
async fn instances(ec2: &aws_sdk_ec2::Client, service_tag: &str) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut pages = ec2
        .describe_instances()
        .filters(live_state_filter())
        .max_results(INSTANCE_PAGE)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.or_aws("DescribeInstances")?;
        for instance in page.reservations().iter().flat_map(|r| r.instances()) {
            tally.add_instance(instance, service_tag);
        }
    }
    Ok(tally)
}

/// The facts of the existing images among `ids`, one call per batch. An id
/// filter, unlike `ImageIds`, does not fail the batch for a deregistered id;
/// deprecated and disabled images count too (DescribeImages leaves them out
/// unless asked, and an instance may run on either).
async fn describe(ec2: &aws_sdk_ec2::Client, ids: &[&str]) -> Result<HashMap<String, ImageFacts>> {
    let mut facts = HashMap::new();
    for batch in ids.chunks(IMAGE_BATCH) {
        let output = ec2
            .describe_images()
            .filters(images::filter("image-id", batch.iter().copied()))
            .include_deprecated(true)
            .include_disabled(true)
            .send()
            .await
            .or_aws("DescribeImages")?;
        facts.extend(output.images().iter().filter_map(ImageFacts::of));
    }
    Ok(facts)
}

/// The image each recipe's `channel` pointer names and when it last moved,
/// for the recipes that have one.
async fn pointers(
    ssm: &aws_sdk_ssm::Client,
    recipes: &[&RecipeName],
    channel: &Channel,
) -> Result<HashMap<RecipeName, (String, Option<jiff::Timestamp>)>> {
    let mut named = HashMap::new();
    for batch in recipes.chunks(POINTER_BATCH) {
        let names: HashMap<String, &RecipeName> = batch
            .iter()
            .map(|recipe| (pointer_name(recipe, channel), *recipe))
            .collect();
        let output = ssm
            .get_parameters()
            .set_names(Some(names.keys().cloned().collect()))
            .send()
            .await
            .or_aws("GetParameters")?;
        for parameter in output.parameters() {
            let recipe = parameter.name().and_then(|name| names.get(name));
            if let (Some(recipe), Some(image)) = (recipe, parameter.value()) {
                let moved = parameter
                    .last_modified_date()
                    .and_then(|at| jiff::Timestamp::from_second(at.secs()).ok());
                named.insert((*recipe).clone(), (image.to_owned(), moved));
            }
        }
    }
    Ok(named)
}
