//! Reading the config file: parse the TOML into [`Config`], run [`check`] over it, and report
//! the first problem with its file, line, column and dotted key.
//!
//! Input: a path (or text). Output: a [`LoadedConfig`] or a [`ConfigError`].

use std::ops::Range;
use std::path::Path;

use super::check::check;
use super::config::{Config, ConfigError, LoadedConfig};

/// Reads and checks the file.
pub fn load(file: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        key: String::new(),
        message: format!("cannot read the config file: {e}"),
    })?;
    parse(file, &text)
}

/// Parses and checks `text` (the content of `file`).
pub fn parse(file: &Path, text: &str) -> Result<LoadedConfig, ConfigError> {
    let at = |span: Option<Range<usize>>, message: String| {
        let span = span.unwrap_or(0..0);
        let (line, column) = line_column(text, span.start);
        ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            key: key_at(text, span.start),
            message,
        }
    };
    let config: Config =
        toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_string()))?;
    check(&config).map_err(|(span, message)| at(Some(span), message))?;
    Ok(LoadedConfig {
        file: file.to_path_buf(),
        config,
    })
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The dotted key at byte `offset`: the nearest table header above it, plus the key that
/// starts its line (for a span inside a value or on a key).
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let header_of = |l: &str| {
        let l = l.trim();
        l.starts_with('[').then(|| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
    };
    if let Some(header) = header_of(line) {
        return header;
    }
    let header = text[..line_start]
        .lines()
        .rev()
        .find_map(header_of)
        .unwrap_or_default();
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .unwrap_or_default();
    match (header.is_empty(), key.is_empty()) {
        (_, true) => header,
        (true, false) => key,
        (false, false) => format!("{header}.{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_keys_of_problems() {
        let text = "[repositories.main]\nlocation = \"/r\"\nencryption = \"none\"\n\n[applications.cms]\nrepository = \"main\"\npaths = [\"/srv\"]\nretention = { keep_dayly = 7 }\n";
        let error = parse(Path::new("vault.toml"), text).unwrap_err();
        assert_eq!(
            (error.line, error.key.as_str()),
            (8, "applications.cms.retention")
        );
        assert!(error.message.contains("keep_dayly"), "{error}");
        assert!(error.column > 1);
        assert!(error.to_string().starts_with("vault.toml:8:"), "{error}");
    }
}
