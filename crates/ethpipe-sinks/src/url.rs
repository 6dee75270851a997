//! `--database-url` parsing, with a printable form that never shows the password.

use std::path::PathBuf;
use std::str::FromStr;

#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Postgres {
        config: Box<tokio_postgres::Config>,
        /// `postgres://user@host:port/db`, password removed, for messages.
        shown: String,
    },
    Sqlite {
        path: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("invalid --database-url '{shown}': {problem}")]
pub struct UrlError {
    shown: String,
    problem: String,
}

impl DatabaseUrl {
    pub fn shown(&self) -> String {
        match self {
            DatabaseUrl::Postgres { shown, .. } => shown.clone(),
            DatabaseUrl::Sqlite { path } => format!("sqlite://{}", path.display()),
        }
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user_info = &rest[..at];
            let user = user_info.split(':').next().unwrap_or("");
            let masked = if user_info.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{}{masked}{}", &url[..scheme_end + 3], &rest[at..])
        }
        None => url.to_string(),
    }
}

impl FromStr for DatabaseUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let shown = redact(url);
        let problem = |problem: &str| UrlError {
            shown: shown.clone(),
            problem: problem.to_string(),
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(problem("expected sqlite://PATH, e.g. sqlite://ethpipe.db"));
            }
            return Ok(DatabaseUrl::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let config = tokio_postgres::Config::from_str(url).map_err(|e| {
                problem(&format!(
                    "{e} (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)"
                ))
            })?;
            if config.get_hosts().is_empty() {
                return Err(problem(
                    "no host (expected postgres://USER@HOST[:PORT]/DATABASE)",
                ));
            }
            return Ok(DatabaseUrl::Postgres {
                config: Box::new(config),
                shown,
            });
        }
        Err(problem(
            "unsupported scheme; use postgres://USER@HOST/DB or sqlite://PATH",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://bob:s3cret@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact("postgres://bob@db/x"), "postgres://bob@db/x");
        let err = "postgres://bob:s3cret@db:notaport/x"
            .parse::<DatabaseUrl>()
            .unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err
            .to_string()
            .starts_with("invalid --database-url 'postgres://bob:***@db:notaport/x'"));
    }

    #[test]
    fn schemes() {
        assert!(matches!(
            "sqlite://ethpipe.db".parse(),
            Ok(DatabaseUrl::Sqlite { .. })
        ));
        assert!(matches!(
            "postgres://u@h/db".parse(),
            Ok(DatabaseUrl::Postgres { .. })
        ));
        assert!("mysql://u@h/db".parse::<DatabaseUrl>().is_err());
        assert!("sqlite://".parse::<DatabaseUrl>().is_err());
    }
}
