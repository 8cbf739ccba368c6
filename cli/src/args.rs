//! What several commands take: the output format, a recipe by name or
//! directory, a channel move's channel, reason and actor, and the one way
//! the CLI builds its context.

use clap::ValueEnum;
use kiln::Error;
use kiln::aws::{Context, Settings};
use kiln::channels::pointers::Why;
use kiln::ids::{Channel, RecipeName};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    #[value(alias = "table")]
    Text,
    /// For scripts.
    Json,
}

/// Which channel moves, why, and who moves it.
#[derive(Debug, clap::Args)]
pub struct MoveArgs {
    /// The channel (prod, staging, ...).
    #[arg(long)]
    pub channel: String,
    /// Why: recorded in the channel's history.
    #[arg(long)]
    pub reason: String,
    /// Who: recorded with the reason (SSM also records the AWS identity).
    #[arg(long, env = "KILN_ACTOR", default_value_t = default_actor())]
    pub actor: String,
}

impl MoveArgs {
    /// Who moves, and why.
    pub fn why(&self) -> Why<'_> {
        Why {
            reason: &self.reason,
            actor: &self.actor,
        }
    }

    /// The channel, checked.
    pub fn channel(&self) -> Result<Channel, Error> {
        self.channel.parse()
    }
}

/// Who acts when `--actor` and `KILN_ACTOR` do not say: the user.
pub fn default_actor() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
}

/// A recipe given by name or by its directory (`images/ubuntu-base/`).
pub fn recipe_name(arg: &str) -> Result<RecipeName, Error> {
    let name = std::path::Path::new(arg)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(arg);
    name.parse()
}

/// The context of every command: clients from the standard AWS environment,
/// settings from kiln's environment with what the command's flags say on top.
pub async fn context(flags: impl FnOnce(&mut Settings)) -> Context {
    let config = aws_config::load_from_env().await;
    let mut settings = Settings::from_env();
    flags(&mut settings);
    Context::new(&config, settings)
}
