//! SQL model blocks: a folder of `.sql` files run in name order on each day
//! a run loads, inside the day's transaction, each with the day bound as a
//! parameter (`:day` or `$1`).

use std::path::{Path, PathBuf};

use ethpipe_sinks::models::split_statements;
pub use ethpipe_sinks::models::Model;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read SQL models from {folder}: {source}")]
    Folder {
        folder: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read SQL models from {folder}: {file}: {source}")]
    File {
        folder: PathBuf,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read SQL models from {folder}: {name} holds no SQL statement")]
    Empty { folder: PathBuf, name: String },
}

/// Reads every `*.sql` file of `folder`, sorted by file name.
pub fn load_folder(folder: &Path) -> Result<Vec<Model>, ModelError> {
    let entries = std::fs::read_dir(folder).map_err(|source| ModelError::Folder {
        folder: folder.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql") && path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|source| ModelError::File {
                folder: folder.to_path_buf(),
                file: path.clone(),
                source,
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let statements = split_statements(&text);
            if statements.is_empty() {
                return Err(ModelError::Empty {
                    folder: folder.to_path_buf(),
                    name,
                });
            }
            Ok(Model { name, statements })
        })
        .collect()
}
