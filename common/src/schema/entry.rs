//! How a job names what to run inside its checkout: `entry`, `workdir`, `args`.
//! The frontend applies these rules to the strings alone; the executor applies
//! them again and is the authority on the checkout itself (symlinks, missing files).

/// The longest `entry` or `workdir`, in characters.
pub const MAX_PATH_CHARS: usize = 1024;
/// The most `args` a job may pass, and the longest one, in characters.
pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_CHARS: usize = 4096;

/// Whether `path` names something inside a checkout by its text alone: relative,
/// `/`-separated non-empty parts, none `.` or `..`, no control characters.
pub fn is_checkout_path(path: &str) -> bool {
    !path.is_empty()
        && path.chars().count() <= MAX_PATH_CHARS
        && !path.chars().any(char::is_control)
        && path.split('/').all(|part| !matches!(part, "" | "." | ".."))
}

/// Why `args` are refused, if they are: too many, one too long, or a NUL (which no
/// process argument can hold).
pub fn check_args(args: &[String]) -> Result<(), String> {
    if args.len() > MAX_ARGS {
        return Err(format!("args holds more than {MAX_ARGS} strings"));
    }
    match args.iter().position(|a| a.chars().count() > MAX_ARG_CHARS || a.contains('\0')) {
        Some(i) => Err(format!("args[{i}] must be at most {MAX_ARG_CHARS} characters without NUL")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_paths_stay_inside_by_their_text() {
        for good in ["main.py", "src/handler.py", "pkg.mod:run", "a b/ü.js", ".hidden/x"] {
            assert!(is_checkout_path(good), "{good:?}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a/./b", "a//b", "a/", ".", "a\nb", &"x".repeat(1025)] {
            assert!(!is_checkout_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn args_are_bounded() {
        assert!(check_args(&["a b".into(), "\"q\"".into(), "ü".repeat(4096)]).is_ok());
        assert!(check_args(&vec![String::new(); 65]).is_err());
        assert_eq!(
            check_args(&["ok".into(), "x\0y".into()]).unwrap_err(),
            "args[1] must be at most 4096 characters without NUL"
        );
    }
}
