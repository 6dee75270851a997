//! Reading credentials: a service-account key file, or Application Default Credentials.

use std::path::PathBuf;

use ethpipe_core::SourceError;
use gcp_bigquery_client::client_builder::ClientBuilder;
use gcp_bigquery_client::yup_oauth2::ServiceAccountKey;
use gcp_bigquery_client::Client;

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
}

impl Credentials {
    /// Reads and checks the key file so a bad key fails before any run starts.
    /// Errors name the file and the problem, never the key's contents.
    pub(super) fn load(&self) -> Result<Loaded, SourceError> {
        match self {
            Credentials::ApplicationDefault => Ok(Loaded {
                key: None,
                project_id: std::env::var("GOOGLE_CLOUD_PROJECT").ok(),
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

impl Loaded {
    pub(super) async fn build_client(self, builder: &ClientBuilder) -> Result<Client, SourceError> {
        let result = match self.key {
            Some(key) => builder.build_from_service_account_key(key, false).await,
            None => builder.build_from_application_default_credentials().await,
        };
        result.map_err(|e| {
            SourceError::Config(format!(
                "cannot set up BigQuery credentials: {e} (pass --credentials KEY.json, run `gcloud auth application-default login`, or use --source rpc)"
            ))
        })
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
