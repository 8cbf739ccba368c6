//! Coming from Packer: `kiln import packer` writes a recipe from a template.

use std::path::PathBuf;

use clap::Subcommand;
use kiln::Error;
use kiln::import::{self, Imported};

use crate::args::Output;
use crate::output::{print, table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a recipe from a Packer template (legacy JSON or HCL2) with an
    /// amazon-ebs source and its shell scripts, and report every field that
    /// did not carry over. Relative script paths are read from the current
    /// directory, as Packer reads them: run it where you run Packer.
    Packer {
        /// The Packer template (`.json` or `.pkr.hcl`).
        template: PathBuf,
        /// The recipe directory to make; it must not exist (default: ./NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The recipe's name: the directory's name (default: the --out
        /// directory's name, else the template's).
        #[arg(long)]
        name: Option<String>,
        /// The amazon-ebs source to import when the template has several
        /// (`ubuntu` or `amazon-ebs.ubuntu`; a JSON builder's name).
        #[arg(long)]
        source: Option<String>,
    },
}

pub fn run(output: Output, command: &Command) -> Result<(), Error> {
    let Command::Packer {
        template,
        out,
        name,
        source,
    } = command;
    let cwd = std::env::current_dir()
        .map_err(|err| Error::InvalidInput(format!("no working directory: {err}")))?;
    let imported = import::packer(&import::Request {
        template: template.clone(),
        out: out.clone(),
        name: name.clone(),
        source: source.clone(),
        cwd,
    })?;
    print(output, &imported, || text(&imported));
    Ok(())
}

fn text(imported: &Imported) -> String {
    let dir = imported.dir.display();
    let mut out = format!(
        "imported {} as recipe {} in {dir}: steps {}\nnext: kiln validate {dir}, then kiln build {dir}\n",
        imported.source,
        imported.recipe,
        imported.steps.join(", "),
    );
    if imported.report.is_empty() {
        out.push_str("\neverything carried over");
    } else {
        out.push('\n');
        out.push_str(&table(
            &["FIELD", "OUTCOME", "WHAT KILN DOES INSTEAD"],
            &imported.report,
            |f| vec![f.field.clone(), f.outcome.to_string(), f.message.clone()],
        ));
    }
    out
}
