//! Runs the real `ethpipe` binary and captures what it printed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

#[derive(Clone)]
pub struct Ethpipe {
    binary: PathBuf,
    envs: Vec<(String, String)>,
    cwd: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Both streams, for "this must never appear anywhere" assertions.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn assert_success(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "ethpipe failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Ethpipe {
    pub fn new(binary: impl Into<PathBuf>) -> Ethpipe {
        Ethpipe {
            binary: binary.into(),
            envs: Vec::new(),
            cwd: None,
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.envs.push((key.to_string(), value.into()));
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// The configured command, for tests that need the child (to kill it).
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.binary);
        command.args(args).stdin(Stdio::null()).kill_on_drop(true);
        // Tests must not pick up the developer's own settings.
        for (key, _) in std::env::vars() {
            if key.starts_with("ETHPIPE_") || key == "GOOGLE_APPLICATION_CREDENTIALS" {
                command.env_remove(key);
            }
        }
        command.env("ETHPIPE_RETRY_ATTEMPTS", "3");
        // `serve` listens for its dashboard; a free port each, so tests running
        // in parallel never fight over the default 6789.
        command.env("ETHPIPE_BIND", "127.0.0.1:0");
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        command
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        let output = self
            .command(args)
            .output()
            .await
            .expect("the ethpipe binary runs");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}
