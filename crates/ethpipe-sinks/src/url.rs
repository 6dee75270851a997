//! `--database-url` parsing, with a printable form that never shows the password.
//!
//! A PostgreSQL URL may carry libpq's `sslmode` and `sslrootcert`; they are
//! taken out here and become the URL's [`PgTls`], so a bad mode or an
//! unreadable root certificate is a bad URL, found before anything connects.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::tls::{PgTls, SslMode};

#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Postgres {
        config: Box<tokio_postgres::Config>,
        /// How every connection to this database is encrypted and verified.
        tls: PgTls,
        /// `postgres://user@host:port/db`, password removed, for messages.
        shown: String,
    },
    Sqlite {
        path: PathBuf,
    },
    /// Parquet files under `dir`, one per dataset and day; the ledger is the
    /// SQLite file [`DatabaseUrl::parquet_ledger`] beside them.
    Parquet {
        dir: PathBuf,
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
            DatabaseUrl::Parquet { dir } => format!("parquet://{}", dir.display()),
        }
    }

    /// The ledger of a `parquet://DIR` store: an SQLite file inside DIR,
    /// beside the dataset folders (readers' `*/date=*/*.parquet` globs skip it).
    pub fn parquet_ledger(dir: &Path) -> PathBuf {
        dir.join("_ethpipe.db")
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
        if let Some(dir) = url.strip_prefix("parquet://") {
            if dir.is_empty() {
                return Err(problem(
                    "expected parquet://DIR, a folder for the files, e.g. parquet://./data",
                ));
            }
            return Ok(DatabaseUrl::Parquet {
                dir: PathBuf::from(dir),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (driver_url, tls_options) = take_tls_options(url).map_err(|p| problem(&p))?;
            let mut config = tokio_postgres::Config::from_str(&driver_url).map_err(|e| {
                problem(&format!(
                    "{e} (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)"
                ))
            })?;
            if config.get_hosts().is_empty() {
                return Err(problem(
                    "no host (expected postgres://USER@HOST[:PORT]/DATABASE)",
                ));
            }
            let tls = tls_options.connector().map_err(|p| problem(&p))?;
            // As libpq: sslmode is ignored on Unix sockets, which the server
            // never encrypts (a `require` there would always be refused).
            let over_network = config
                .get_hosts()
                .iter()
                .any(|host| matches!(host, tokio_postgres::config::Host::Tcp(_)));
            config.ssl_mode(if over_network {
                tls.mode().driver_mode()
            } else {
                tokio_postgres::config::SslMode::Disable
            });
            return Ok(DatabaseUrl::Postgres {
                config: Box::new(config),
                tls,
                shown,
            });
        }
        Err(problem(
            "unsupported scheme; use postgres://USER@HOST/DB, sqlite://PATH or parquet://DIR",
        ))
    }
}

/// libpq's TLS options as the URL gives them, still unchecked.
#[derive(Debug, Default, PartialEq)]
struct TlsOptions {
    mode: Option<String>,
    root_cert: Option<String>,
}

impl TlsOptions {
    fn connector(&self) -> Result<PgTls, String> {
        let mode = match &self.mode {
            Some(text) => text
                .parse()
                .map_err(|e: crate::tls::TlsError| e.to_string())?,
            None => SslMode::DEFAULT,
        };
        PgTls::new(mode, self.root_cert.as_deref().map(Path::new)).map_err(|e| e.to_string())
    }
}

/// Splits `sslmode` and `sslrootcert` off the query string: tokio-postgres
/// knows only three of libpq's five modes and rejects `sslrootcert`, so it
/// gets the URL without them.
fn take_tls_options(url: &str) -> Result<(String, TlsOptions), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), TlsOptions::default()));
    };
    let mut options = TlsOptions::default();
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || {
            percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| format!("{key} is not valid UTF-8 once decoded"))
        };
        match key {
            "sslmode" => options.mode = Some(decoded()?),
            "sslrootcert" => options.root_cert = Some(decoded()?),
            _ => kept.push(pair),
        }
    }
    let driver_url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((driver_url, options))
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
        let Ok(DatabaseUrl::Parquet { dir }) = "parquet://./data".parse() else {
            panic!("a parquet URL");
        };
        assert_eq!(dir, PathBuf::from("./data"));
        let error = "parquet://".parse::<DatabaseUrl>().unwrap_err().to_string();
        assert!(error.contains("expected parquet://DIR"), "{error}");
    }

    fn tls_mode(url: &str) -> Result<SslMode, String> {
        match url.parse::<DatabaseUrl>() {
            Ok(DatabaseUrl::Postgres { tls, .. }) => Ok(tls.mode()),
            Ok(other) => Err(format!("not PostgreSQL: {}", other.shown())),
            Err(error) => Err(error.to_string()),
        }
    }

    #[test]
    fn sslmode_defaults_to_prefer_and_takes_libpq_values() {
        assert_eq!(tls_mode("postgres://u@h/db"), Ok(SslMode::Prefer));
        assert_eq!(
            tls_mode("postgres://u@h/db?sslmode=verify-full&application_name=x"),
            Ok(SslMode::VerifyFull)
        );
        assert_eq!(
            tls_mode("postgres://u@h/db?sslmode=disable"),
            Ok(SslMode::Disable)
        );
        let error = tls_mode("postgres://u:pw@h/db?sslmode=bogus").unwrap_err();
        assert_eq!(
            error,
            "invalid --database-url 'postgres://u:***@h/db?sslmode=bogus': \
             sslmode 'bogus' is not one of disable, prefer, require, verify-ca, verify-full"
        );
    }

    #[test]
    fn other_options_still_reach_the_driver() {
        let (rest, options) =
            take_tls_options("postgres://u@h/db?connect_timeout=3&sslrootcert=%2Ftmp%2Fa%20b.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u@h/db?connect_timeout=3");
        assert_eq!(options.root_cert.as_deref(), Some("/tmp/a b.pem"));
        let Ok(DatabaseUrl::Postgres { config, .. }) =
            "postgres://u@h/db?sslmode=require&connect_timeout=3".parse()
        else {
            panic!("a valid URL");
        };
        assert_eq!(
            config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[test]
    fn unix_sockets_are_never_asked_for_tls() {
        let Ok(DatabaseUrl::Postgres { config, .. }) =
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/db?sslmode=require".parse()
        else {
            panic!("a valid URL");
        };
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
    }

    #[test]
    fn a_missing_root_certificate_is_a_bad_url() {
        let error = tls_mode("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err();
        assert!(
            error.contains("cannot read sslrootcert /nonexistent/ca.pem"),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
    }
}
