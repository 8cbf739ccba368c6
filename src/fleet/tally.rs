//! The pure half of an audit: instances folded into counts per image and
//! service, and each image classified against its channel's pointer. No I/O,
//! so it is measured on its own (`make bench`) and tested without AWS.

use std::collections::HashMap;

use aws_sdk_ec2::types::{Image, ImageState, Instance};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{Channel, RecipeName};
use crate::tags::{self, Role};

/// The service of instances without the service tag.
pub const UNTAGGED: &str = "(untagged)";

/// Where an instance's image stands against its recipe's channel pointer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::AsRefStr,
    strum::EnumIter,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Status {
    /// The image the channel's pointer names.
    Current,
    /// A kiln image of the recipe, newer than the current one and not
    /// promoted to the channel (a candidate, or another channel's image).
    Newer,
    /// The image the channel would return to on rollback (`kiln:previous`).
    Previous,
    /// A kiln image of the recipe, older than the current one.
    Stale,
    /// A kiln image of a recipe with no pointer on the channel in its region.
    Unpromoted,
    /// An image kiln did not build.
    Foreign,
    /// The image is gone: the instance cannot be relaunched from it.
    Deregistered,
}

impl Status {
    /// Whether instances on such an image are behind the promoted image:
    /// they run something older, unknown, or gone.
    pub fn is_behind(self) -> bool {
        matches!(
            self,
            Self::Previous | Self::Stale | Self::Foreign | Self::Deregistered
        )
    }

    /// Every status, in report order.
    pub fn all() -> impl Iterator<Item = Self> {
        <Self as strum::IntoEnumIterator>::iter()
    }
}

/// What an audit needs of an existing image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// The image name.
    pub name: Option<String>,
    /// The owning account.
    pub owner: Option<String>,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// The kiln recipe that built it (`kiln:recipe`); none for foreign images.
    pub recipe: Option<RecipeName>,
    /// The channels that would return to it on rollback (`kiln:previous`).
    pub previous_on: Vec<Channel>,
}

impl ImageFacts {
    /// The facts of `image`, or `None` when it is deregistered (EC2 lists an
    /// image for a while after its deregistration).
    pub fn of(image: &Image) -> Option<(String, Self)> {
        if image.state() == Some(&ImageState::Deregistered) {
            return None;
        }
        let id = image.image_id()?.to_owned();
        let tags = image.tags();
        Some((
            id,
            Self {
                name: image.name().map(str::to_owned),
                owner: image.owner_id().map(str::to_owned),
                created: image.creation_date().and_then(|d| d.parse().ok()),
                recipe: tags::value(tags, tags::RECIPE).and_then(|r| r.parse().ok()),
                previous_on: tags::value(tags, tags::PREVIOUS)
                    .map(|v| {
                        v.split_whitespace()
                            .filter_map(|c| c.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        ))
    }
}

/// A channel pointer as the audit sees it: the image it names and when that
/// image was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// The image id the pointer names.
    pub image_id: String,
    /// When that image was created (unknown when it is gone).
    pub created: Option<Timestamp>,
}

/// Classifies image `image_id` (its facts, `None` when it is gone) against
/// the pointers of `channel`, by recipe.
pub fn classify(
    image_id: &str,
    facts: Option<&ImageFacts>,
    pointers: &HashMap<RecipeName, Pointer>,
    channel: &Channel,
) -> Status {
    let Some(facts) = facts else {
        return Status::Deregistered;
    };
    let Some(recipe) = &facts.recipe else {
        return Status::Foreign;
    };
    let Some(pointer) = pointers.get(recipe) else {
        return Status::Unpromoted;
    };
    if pointer.image_id == image_id {
        Status::Current
    } else if facts.previous_on.contains(channel) {
        Status::Previous
    } else {
        match (facts.created, pointer.created) {
            (Some(image), Some(current)) if image > current => Status::Newer,
            _ => Status::Stale,
        }
    }
}

/// Instances folded into counts per image and service: memory grows with
/// distinct (image, service) pairs, not with instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Image id, then service, then instances.
    by_image: HashMap<String, HashMap<String, u64>>,
    /// Instances counted.
    pub instances: u64,
    /// Kiln's own builder and test instances, left out of the counts.
    pub builders: u64,
}

impl Tally {
    /// Counts one instance of `service` on `image`.
    pub fn add(&mut self, image: &str, service: &str) {
        self.add_many(image, service, 1);
    }

    /// Counts `n` instances of `service` on `image`.
    pub fn add_many(&mut self, image: &str, service: &str, n: u64) {
        self.instances += n;
        let services = match self.by_image.get_mut(image) {
            Some(services) => services,
            None => self.by_image.entry(image.to_owned()).or_default(),
        };
        match services.get_mut(service) {
            Some(count) => *count += n,
            None => {
                services.insert(service.to_owned(), n);
            }
        }
    }

    /// Counts `instance` by its image and the value of its `service_tag`;
    /// kiln's own builders and test instances are counted apart.
    pub fn add_instance(&mut self, instance: &Instance, service_tag: &str) {
        let tags = instance.tags();
        let role = tags::value(tags, tags::ROLE);
        if role == Some(Role::Builder.as_ref()) || role == Some(Role::Test.as_ref()) {
            self.builders += 1;
            return;
        }
        if let Some(image) = instance.image_id() {
            self.add(image, tags::value(tags, service_tag).unwrap_or(UNTAGGED));
        }
    }

    /// The distinct image ids, sorted.
    pub fn images(&self) -> Vec<&str> {
        let mut images: Vec<_> = self.by_image.keys().map(String::as_str).collect();
        images.sort_unstable();
        images
    }

    /// The instances per service on `image`.
    pub fn services(&self, image: &str) -> impl Iterator<Item = (&str, u64)> {
        self.by_image
            .get(image)
            .into_iter()
            .flatten()
            .map(|(service, count)| (service.as_str(), *count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kiln_image(recipe: &str, created: &str, previous_on: &[&str]) -> ImageFacts {
        ImageFacts {
            name: Some(format!("kiln/{recipe}")),
            owner: Some("123456789012".into()),
            created: Some(created.parse().expect("timestamp")),
            recipe: Some(recipe.parse().expect("recipe")),
            previous_on: previous_on
                .iter()
                .map(|c| c.parse().expect("channel"))
                .collect(),
        }
    }

    #[test]
    fn every_status_is_reached() {
        let prod: Channel = "prod".parse().expect("channel");
        let pointers = HashMap::from([(
            "web".parse().expect("recipe"),
            Pointer {
                image_id: "ami-0c".into(),
                created: Some("2026-11-20T00:00:00Z".parse().expect("timestamp")),
            },
        )]);
        let current = kiln_image("web", "2026-11-20T00:00:00Z", &[]);
        let previous = kiln_image("web", "2026-11-10T00:00:00Z", &["prod"]);
        let stale = kiln_image("web", "2026-11-01T00:00:00Z", &["staging"]);
        let newer = kiln_image("web", "2026-11-24T00:00:00Z", &[]);
        let other = kiln_image("api", "2026-11-24T00:00:00Z", &[]);
        let foreign = ImageFacts::default();
        let class = |id, facts| classify(id, facts, &pointers, &prod);
        assert_eq!(class("ami-0c", Some(&current)), Status::Current);
        assert_eq!(class("ami-0p", Some(&previous)), Status::Previous);
        assert_eq!(class("ami-0s", Some(&stale)), Status::Stale);
        assert_eq!(class("ami-0n", Some(&newer)), Status::Newer);
        assert_eq!(class("ami-0a", Some(&other)), Status::Unpromoted);
        assert_eq!(class("ami-0f", Some(&foreign)), Status::Foreign);
        assert_eq!(class("ami-0d", None), Status::Deregistered);
        let behind: Vec<_> = Status::all().filter(|s| s.is_behind()).collect();
        assert_eq!(
            behind,
            [
                Status::Previous,
                Status::Stale,
                Status::Foreign,
                Status::Deregistered
            ]
        );
    }

    #[test]
    fn tally_counts_per_image_and_service() {
        let mut tally = Tally::default();
        for (image, service) in [("ami-1", "web"), ("ami-1", "web"), ("ami-2", "api")] {
            tally.add(image, service);
        }
        let builder = Instance::builder()
            .image_id("ami-3")
            .tags(tags::tag(tags::ROLE, Role::Builder.as_ref()))
            .build();
        tally.add_instance(&builder, "Service");
        tally.add_instance(&Instance::builder().image_id("ami-2").build(), "Service");
        assert_eq!(tally.instances, 4);
        assert_eq!(tally.builders, 1);
        assert_eq!(tally.images(), ["ami-1", "ami-2"]);
        let mut api: Vec<_> = tally.services("ami-2").collect();
        api.sort_unstable();
        assert_eq!(api, [(UNTAGGED, 1), ("api", 1)]);
    }
}
