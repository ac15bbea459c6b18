//! `cargo xtask man`: the man pages of `lb` (section 8) and of each subcommand, generated
//! from lb's own clap definitions, so they say exactly what `lb --help` says.
//!
//! `lb-userspace/src/cli.rs` uses only clap and std; it is compiled into xtask as a module
//! (the way clap_mangen's docs include a CLI into a build script), which keeps xtask from
//! depending on the whole `lb` library.

#[path = "../../lb-userspace/src/cli.rs"]
#[allow(dead_code)]
mod lb_cli;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_mangen::{
    roff::{bold, roman, Roff},
    Man,
};
use std::path::{Path, PathBuf};

/// System administration commands and daemons: `lb` lives in /usr/sbin.
pub const SECTION: &str = "8";

/// The `lb` command tree as the man pages see it (no `help` subcommand).
pub fn command() -> clap::Command {
    let mut cmd = lb_cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Writes `lb.8` and `lb-<subcommand>.8` for every visible subcommand into `out`
/// (created if missing); returns the files written.
pub fn generate(out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cmd = command();
    let mut written = Vec::new();
    let main = out.join(format!("lb.{SECTION}"));
    std::fs::write(&main, main_page(&cmd)?)
        .with_context(|| format!("writing {}", main.display()))?;
    written.push(main);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = Man::new(sub.clone())
            .section(SECTION)
            .manual("lb")
            .source(format!("lb {}", env!("CARGO_PKG_VERSION")));
        let path = out.join(man.get_filename());
        let mut page = Vec::new();
        man.render(&mut page)?;
        let mut see_also = Roff::new();
        see_also.control("SH", ["SEE ALSO"]);
        see_also.text([bold("lb"), roman(format!("({SECTION})"))]);
        page.extend_from_slice(see_also.render().as_bytes());
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `lb.8`: clap_mangen's sections, then SIGNALS, ENVIRONMENT and FILES from the long help's
/// epilogue (instead of clap_mangen's generic EXTRA section), and SEE ALSO.
fn main_page(cmd: &clap::Command) -> Result<Vec<u8>> {
    let epilogue = cmd
        .get_after_long_help()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let man = Man::new(cmd.clone().after_long_help(None::<&str>))
        .section(SECTION)
        .manual("lb");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    let mut roff = Roff::new();
    for block in epilogue.split("\n\n") {
        let mut lines = block.lines();
        let Some(heading) = lines.next() else {
            continue;
        };
        let title = heading
            .split([' ', ':'])
            .next()
            .unwrap_or(heading)
            .to_uppercase();
        roff.control("SH", [title.as_str()]);
        for line in lines {
            let line = line.trim_start();
            let (name, text) = line.split_once("  ").unwrap_or((line, ""));
            roff.control("TP", []);
            roff.text([bold(name)]);
            roff.text([roman(text.trim())]);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut refs: Vec<_> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| format!("lb-{}({SECTION}), ", s.get_name()))
        .collect();
    refs.push("bpftool(8), systemctl(1), /usr/share/doc/lb/".to_string());
    roff.text([roman(refs.concat())]);
    page.extend_from_slice(roff.render().as_bytes());
    man.render_version_section(&mut page)?;
    Ok(page)
}
