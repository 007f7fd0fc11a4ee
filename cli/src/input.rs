//! A job's input as given on the command line: JSON text, `@FILE`, or `-` (stdin).

use std::io::Read;

use serde_json::Value;

use crate::error::CliError;

/// The input value; `None` when no `--input` was given.
pub fn read(arg: Option<&str>) -> Result<Option<Value>, CliError> {
    let Some(arg) = arg else { return Ok(None) };
    let (text, from) = if arg == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| CliError::Usage(format!("reading stdin: {e}")))?;
        (text, "stdin".to_owned())
    } else if let Some(path) = arg.strip_prefix('@') {
        let text = std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("--input @{path}: {e}")))?;
        (text, path.to_owned())
    } else {
        (arg.to_owned(), "--input".to_owned())
    };
    serde_json::from_str(&text).map(Some).map_err(|e| CliError::Usage(format!("{from} is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_and_files_are_read_and_bad_json_is_a_usage_error() {
        assert_eq!(read(Some(r#"{"a": [1]}"#)).unwrap(), Some(serde_json::json!({"a": [1]})));
        assert_eq!(read(None).unwrap(), None);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "[true]").unwrap();
        assert_eq!(read(Some(&format!("@{}", file.path().display()))).unwrap(), Some(serde_json::json!([true])));
        assert!(matches!(read(Some("{nope")), Err(CliError::Usage(m)) if m.contains("not valid JSON")));
        assert!(matches!(read(Some("@/does/not/exist")), Err(CliError::Usage(_))));
    }
}
