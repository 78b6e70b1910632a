//! `millwright schema`: prints, as JSON, every measurement, tag, field and unit the node
//! writes and every metric it serves, from the schema constants in `millwright-core`.

use std::process::ExitCode;

/// Prints the schema description as pretty JSON on stdout.
pub fn run() -> anyhow::Result<ExitCode> {
    let json = serde_json::to_string_pretty(&millwright_core::schema::describe::schema())?;
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}
