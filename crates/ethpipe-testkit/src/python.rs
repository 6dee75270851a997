//! The Python interpreter `make python-tools` (scripts/ensure-python-tools.sh)
//! installs with DuckDB, and a helper that runs a script with it: the tests
//! read Parquet and CSV files back with DuckDB, an independent reader.

use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::anvil::tools_dir;

/// The virtual environment's interpreter.
pub fn python() -> anyhow::Result<PathBuf> {
    let path = tools_dir().join("python").join("bin").join("python");
    if !path.is_file() {
        bail!(
            "the tests' Python is not installed at {}: run `make python-tools` (scripts/ensure-python-tools.sh)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `script` with `args` (`sys.argv[1:]`) and returns its standard
/// output; a non-zero exit is an error carrying its standard error.
pub async fn run_python(script: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(python()?)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .await
        .context("starting python")?;
    if !output.status.success() {
        bail!(
            "python failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("python printed invalid UTF-8")
}
