//! Reading credentials: a service-account key file, or Application Default Credentials.

use std::path::PathBuf;

use ethpipe_core::SourceError;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::yup_oauth2::{
    self, authenticator::ApplicationDefaultCredentialsTypes, ServiceAccountKey,
};

#[derive(Debug, Clone)]
pub enum Credentials {
    /// A service-account JSON key (`--credentials`, `GOOGLE_APPLICATION_CREDENTIALS`).
    KeyFile(PathBuf),
    /// gcloud's user credentials or the metadata server (GKE workload identity, GCE).
    ApplicationDefault,
}

pub(super) struct Loaded {
    key: Option<ServiceAccountKey>,
    pub project_id: Option<String>,
    /// Whether gcloud's user credentials exist (Application Default Credentials).
    pub has_gcloud_file: bool,
}

impl Credentials {
    /// Reads and checks the key file so a bad key fails before any run starts.
    /// Errors name the file and the problem, never the key's contents.
    pub(super) fn load(&self) -> Result<Loaded, SourceError> {
        match self {
            Credentials::ApplicationDefault => Ok(Loaded {
                key: None,
                project_id: std::env::var("GOOGLE_CLOUD_PROJECT").ok(),
                has_gcloud_file: gcloud_file().is_some(),
            }),
            Credentials::KeyFile(path) => {
                let shown = path.display();
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SourceError::Config(format!(
                        "cannot read the credentials file {shown}: {e} (set --credentials or GOOGLE_APPLICATION_CREDENTIALS to a service-account key, or use --source rpc)"
                    ))
                })?;
                let key = parse_key(&text).map_err(|problem| {
                    SourceError::Config(format!(
                        "the credentials file {shown} is not a usable service-account key: {problem} (download a JSON key from IAM > Service accounts > Keys)"
                    ))
                })?;
                Ok(Loaded {
                    project_id: key.project_id.clone(),
                    key: Some(key),
                    has_gcloud_file: false,
                })
            }
        }
    }
}

fn parse_key(text: &str) -> Result<ServiceAccountKey, String> {
    // Parse into a generic value first: serde's errors for the typed struct may quote the input.
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("not valid JSON (line {}, column {})", e.line(), e.column()))?;
    let kind = value.get("type").and_then(|v| v.as_str());
    if kind != Some("service_account") {
        return Err(format!(
            "\"type\" is {}, expected \"service_account\"",
            kind.map(|k| format!("\"{k}\""))
                .unwrap_or_else(|| "missing".into())
        ));
    }
    for field in ["client_email", "private_key", "token_uri"] {
        if value
            .get(field)
            .and_then(|v| v.as_str())
            .is_none_or(str::is_empty)
        {
            return Err(format!("the field \"{field}\" is missing"));
        }
    }
    let private_key = value["private_key"].as_str().unwrap_or_default();
    if !private_key.contains("BEGIN PRIVATE KEY") {
        return Err("\"private_key\" is not a PEM-encoded PKCS#8 key".into());
    }
    serde_json::from_value(value).map_err(|_| "a field has the wrong type".to_string())
}

/// The OAuth scope BigQuery jobs need.
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

/// Access tokens for BigQuery, shared by the client crate (jobs.query) and
/// ethpipe's own page requests; yup-oauth2 caches and refreshes them.
#[derive(Clone)]
pub(super) struct Tokens {
    auth: yup_oauth2::authenticator::DefaultAuthenticator,
}

#[async_trait::async_trait]
impl Authenticator for Tokens {
    async fn access_token(&self) -> Result<String, BQError> {
        self.auth
            .token(&[SCOPE])
            .await?
            .token()
            .map(str::to_string)
            .ok_or(BQError::NoToken)
    }
}

impl Loaded {
    /// Builds the token source: the service-account JWT-bearer flow against the
    /// key's own `token_uri`, or Application Default Credentials.
    pub(super) async fn tokens(self) -> Result<Tokens, SourceError> {
        let built = match self.key {
            Some(key) => {
                yup_oauth2::ServiceAccountAuthenticator::builder(key)
                    .build()
                    .await
            }
            None => application_default().await,
        };
        built.map(|auth| Tokens { auth }).map_err(|e| {
            SourceError::Config(format!(
                "cannot set up BigQuery credentials: {e} ({NO_CREDENTIALS_HINT})"
            ))
        })
    }
}

pub(super) const NO_CREDENTIALS_HINT: &str =
    "pass --credentials KEY.json or set GOOGLE_APPLICATION_CREDENTIALS, \
     run `gcloud auth application-default login`, or use --source rpc --rpc-url URL";

fn gcloud_file() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".config/gcloud/application_default_credentials.json"))
        .filter(|path| path.is_file())
}

/// gcloud's user credentials file first, then the metadata server (GCE, GKE).
async fn application_default() -> std::io::Result<yup_oauth2::authenticator::DefaultAuthenticator> {
    let gcloud_file = std::env::var_os("HOME").map(|home| {
        PathBuf::from(home).join(".config/gcloud/application_default_credentials.json")
    });
    if let Some(path) = gcloud_file.filter(|p| p.is_file()) {
        let secret = yup_oauth2::read_authorized_user_secret(&path).await?;
        return yup_oauth2::AuthorizedUserAuthenticator::builder(secret)
            .build()
            .await;
    }
    let options = yup_oauth2::ApplicationDefaultCredentialsFlowOpts::default();
    match yup_oauth2::ApplicationDefaultCredentialsAuthenticator::builder(options).await {
        ApplicationDefaultCredentialsTypes::InstanceMetadata(builder) => builder.build().await,
        ApplicationDefaultCredentialsTypes::ServiceAccount(builder) => builder.build().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_keys_without_leaking_them() {
        let secret = "-----BEGIN RSA PRIVATE KEY-----SECRETSECRET";
        let key = format!(
            r#"{{"type":"service_account","client_email":"a@b","token_uri":"https://x","private_key":"{secret}"}}"#
        );
        let err = parse_key(&key).unwrap_err();
        assert!(err.contains("PKCS#8"), "{err}");
        assert!(!err.contains("SECRET"));
        assert!(parse_key("{not json")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(parse_key(r#"{"type":"authorized_user"}"#)
            .unwrap_err()
            .contains("expected \"service_account\""));
    }
}
