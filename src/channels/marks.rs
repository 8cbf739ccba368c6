//! What an image carries because of the pointers: the channel tags
//! (`kiln:channel`, `kiln:previous`) and deregistration protection. Both are
//! derived from an image's standing alone (the channels that name it, and
//! those a rollback would return to), by [`mark`], which the sync runs on
//! every image of a recipe in every region.
//!
//! An image with a standing is protected: no one can deregister the image
//! production launches or the one a rollback returns to, whatever their IAM
//! permissions (EC2 User Guide, "Protect an Amazon EC2 AMI from
//! deregistration"). Protection is turned on with AWS's 24-hour cooldown, so
//! turning it off does not expose the image at once; it is turned off when
//! the image leaves both roles, so retention can retire it later.

use aws_sdk_ec2::types::Image as Ec2Image;
use serde::Serialize;

use super::pointers::Standing;
use crate::aws::{Context, images};
use crate::error::Result;
use crate::tags;

/// A tag kiln changed to make the tags agree with the pointers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagChange {
    /// The image's region, when it is a distribution region's copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The image.
    pub image_id: String,
    /// The tag key.
    pub key: &'static str,
    /// Its value before (absent: no tag).
    pub from: Option<String>,
    /// Its value after (absent: tag removed).
    pub to: Option<String>,
}

/// Deregistration protection kiln turned on or off to agree with the pointers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectionChange {
    /// The image's region, when it is a distribution region's copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The image.
    pub image_id: String,
    /// Protected now.
    pub protected: bool,
}

/// What [`mark`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marked {
    /// Tags changed.
    pub tags: Vec<TagChange>,
    /// Protection turned on or off.
    pub protection: Vec<ProtectionChange>,
}

/// Gives each of `images` (in `ctx`'s region, `region` when not the home
/// one) the tags and the protection its standing asks for (`standing`
/// says nothing: on no channel, previous on none); returns what it changed.
pub async fn mark<'a>(
    ctx: &Context,
    region: Option<&String>,
    images: &[Ec2Image],
    standing: impl Fn(&Ec2Image) -> Option<&'a Standing>,
) -> Result<Marked> {
    let mut marked = Marked::default();
    for image in images {
        let Some(id) = image.image_id() else { continue };
        let wanted = standing(image).cloned().unwrap_or_default();
        let protect = !wanted.channels.is_empty() || !wanted.previous.is_empty();
        for (key, channels) in [
            (tags::CHANNEL, wanted.channels),
            (tags::PREVIOUS, wanted.previous),
        ] {
            let to = (!channels.is_empty()).then(|| {
                channels
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            let from = tags::value(image.tags(), key).map(str::to_owned);
            if from != to {
                images::set_tag(ctx, id, key, to.as_deref()).await?;
                marked.tags.push(TagChange {
                    region: region.cloned(),
                    image_id: id.to_owned(),
                    key,
                    from,
                    to,
                });
            }
        }
        if images::is_protected(image) != protect {
            images::protect(ctx, id, protect).await?;
            marked.protection.push(ProtectionChange {
                region: region.cloned(),
                image_id: id.to_owned(),
                protected: protect,
            });
        }
    }
    Ok(marked)
}
