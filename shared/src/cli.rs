//! The command line of every binary: `--help` and `--version`, nothing else.
//!
//! All configuration comes from the environment (and `./.env`), so the five
//! binaries take no arguments; the command line only answers `--help` (the
//! environment variables, [`crate::startup::ENV_HELP`]) and `--version`, and
//! refuses anything else with exit code 2, as argument parsers do. This used
//! to be `clap` with its derive: for a parser with no arguments it was ~20
//! CPU-seconds of every clean build (clap_builder, clap_derive on a second
//! `syn`, anstream…), so the few lines below replace it (BENCHMARKS.md,
//! "Build time").

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No arguments: start.
    Run,
    /// `-h` / `--help`: print the help and exit 0.
    Help,
    /// `-V` / `--version`: print the version and exit 0.
    Version,
    /// Anything else: say what was wrong, exit 2.
    Refuse(String),
}

/// Reads the arguments after the program name.
pub fn action(args: impl IntoIterator<Item = std::ffi::OsString>) -> Action {
    let mut args = args.into_iter();
    let Some(first) = args.next() else { return Action::Run };
    let action = match first.to_str() {
        Some("-h" | "--help" | "help") => Action::Help,
        Some("-V" | "--version") => Action::Version,
        Some(other) => {
            return Action::Refuse(format!(
                "unexpected argument '{other}': settings come from the environment (see --help)"
            ));
        }
        None => return Action::Refuse("an argument is not valid UTF-8".to_string()),
    };
    match args.next() {
        None => action,
        Some(extra) => Action::Refuse(format!("unexpected argument '{}'", extra.to_string_lossy())),
    }
}

/// The help text of binary `name`.
pub fn help(name: &str, about: &str) -> String {
    format!(
        "{about}\n\nUsage: {name} [OPTIONS]\n\nOptions:\n  -h, --help     Print help\n  -V, --version  Print version\n\n{}",
        crate::startup::ENV_HELP
    )
}

/// Handles the command line of binary `name` (version `version`, the
/// binary's own `CARGO_PKG_VERSION`): returns when the binary should start;
/// prints and exits otherwise (0 for `--help`/`--version`, 2 for a refused
/// argument, like the argument parsers users know).
pub fn handle(name: &str, version: &str, about: &str) {
    match action(std::env::args_os().skip(1)) {
        Action::Run => {}
        Action::Help => {
            println!("{}", help(name, about));
            std::process::exit(0);
        }
        Action::Version => {
            println!("{name} {version}");
            std::process::exit(0);
        }
        Action::Refuse(why) => {
            eprintln!("error: {why}\n\nUsage: {name} [OPTIONS]\n\nFor more information, try '--help'.");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(std::ffi::OsString::from).collect()
    }

    #[test]
    fn no_arguments_start_the_binary() {
        assert_eq!(action(args(&[])), Action::Run);
    }

    #[test]
    fn help_and_version_in_both_spellings() {
        assert_eq!(action(args(&["--help"])), Action::Help);
        assert_eq!(action(args(&["-h"])), Action::Help);
        assert_eq!(action(args(&["--version"])), Action::Version);
        assert_eq!(action(args(&["-V"])), Action::Version);
    }

    #[test]
    fn anything_else_is_refused_with_the_argument_named() {
        let Action::Refuse(why) = action(args(&["--port", "80"])) else { panic!("accepted --port") };
        assert!(why.contains("'--port'"), "{why}");
        let Action::Refuse(why) = action(args(&["--help", "extra"])) else { panic!("accepted a second argument") };
        assert!(why.contains("'extra'"), "{why}");
    }

    #[test]
    fn the_help_lists_the_environment() {
        let text = help("arvis", "Arvis, all in one");
        assert!(text.starts_with("Arvis, all in one\n"));
        assert!(text.contains("DATABASE_URL"));
        assert!(text.contains("--version"));
    }
}
