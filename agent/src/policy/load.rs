//! Building a [`PolicySet`] from files: the default pack, a directory, or files named on the
//! command line. Every file is checked; any error fails the whole set (so a reload never puts
//! half a set in force).

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use super::{
    config::PolicyConfig,
    engine::PolicySet,
    error::{CheckError, CheckErrors, PolicyError},
    pack::DEFAULT_PACK,
    rule::{self, Rule},
};

/// Policy texts: `(name used in messages, text)`.
pub type Sources = Vec<(String, String)>;

/// Compiles `sources` into one set; rule names must be unique across them.
pub fn compile(sources: &Sources) -> Result<PolicySet, CheckErrors> {
    let mut errors = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    for (name, text) in sources {
        match rule::parse_file(text, name) {
            Ok(parsed) => {
                for rule in parsed {
                    if let Some(first) = rules.iter().find(|r| r.info.name == rule.info.name) {
                        errors.push(CheckError {
                            file: name.clone(),
                            line: rule.line,
                            column: rule.column,
                            field: "name".into(),
                            message: format!(
                                "rule `{}` is already defined at {}:{}:{}",
                                rule.info.name, first.info.source, first.line, first.column
                            ),
                        });
                    } else {
                        rules.push(rule);
                    }
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(PolicySet::new(
            rules,
            sources.iter().map(|(n, _)| n.clone()).collect(),
        ))
    } else {
        Err(CheckErrors(errors))
    }
}

/// The embedded default pack.
pub fn default_sources() -> Sources {
    DEFAULT_PACK
        .iter()
        .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
        .collect()
}

/// The policy files of `paths`: files as given, directories' `*.yaml`/`*.yml` by name.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PolicyError> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let read = |source| PolicyError::Read {
                path: path.clone(),
                source,
            };
            let mut found = Vec::new();
            for entry in std::fs::read_dir(path).map_err(read)? {
                let entry = entry.map_err(read)?.path();
                if entry.is_file() && is_yaml(&entry) {
                    found.push(entry);
                }
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn is_yaml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

/// Reads `files` (as [`files`] lists them).
pub fn read(files: &[PathBuf]) -> Result<Sources, PolicyError> {
    files
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|text| (path.display().to_string(), text))
                .map_err(|source| PolicyError::Read {
                    path: path.clone(),
                    source,
                })
        })
        .collect()
}

/// The set `config` asks for: the default pack (if on), then the directory's files. This is
/// the daemon's loader: the directory and every file must be ones only root could have
/// written (see [`crate::secure::trust`]); `vigil policy check` uses [`read`] instead.
pub fn load(config: &PolicyConfig) -> Result<PolicySet, PolicyError> {
    let mut sources = if config.default_pack {
        default_sources()
    } else {
        Vec::new()
    };
    if let Some(dir) = config.directory() {
        crate::secure::trust::check_dir(&dir)?;
        for path in files(&[dir])? {
            let text = crate::secure::trust::read_to_string(&path)?;
            sources.push((path.display().to_string(), text));
        }
    }
    Ok(compile(&sources)?)
}

/// What changes when a policy file in the directory changes: names, sizes, mtimes.
pub type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

pub fn fingerprint(dir: &Path) -> Fingerprint {
    let Ok(found) = files(&[dir.to_owned()]) else {
        return Vec::new();
    };
    found
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = meta.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect()
}
