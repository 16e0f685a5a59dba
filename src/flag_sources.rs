//! Where the binary's flags come from besides the command line: the `--config` TOML
//! file and the `RINGCAST_*` environment (one rule, `--foo-bar` ⇔ `RINGCAST_FOO_BAR`,
//! two deprecated plural names, and a warning for any name that matches no flag).
//! Part of the binary, not the library: library code never reads the environment.

use std::ffi::OsString;

use clap::CommandFactory;

use crate::Flags;

/// Adds the options of a `--config` TOML file to the command line, ahead of it, except
/// those also given as flags or environment variables (which take precedence).
pub(crate) fn with_config_file(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let text_args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let path = text_args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| text_args.get(i + 1).cloned())
        .or_else(|| {
            text_args
                .iter()
                .find_map(|a| a.strip_prefix("--config=").map(str::to_owned))
        })
        .or_else(|| std::env::var("RINGCAST_CONFIG").ok());
    let Some(path) = path else { return Ok(args) };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("--config {path}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e| format!("--config {path}: {e}"))?;
    let command = Flags::command();
    let mut extra = Vec::new();
    for (key, value) in &table {
        let name = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(name.as_str()) && name != "config")
            .ok_or_else(|| {
                let longs = flag_longs(&command).filter(|l| *l != "config");
                match closest(&name, longs) {
                    Some(meant) => format!(
                        "--config {path}: unknown option `{key}`; did you mean `{}`?",
                        meant.replace('-', "_")
                    ),
                    None => format!("--config {path}: unknown option `{key}`"),
                }
            })?;
        let in_environment = arg.get_env().is_some_and(|v| std::env::var_os(v).is_some());
        // A deprecated variable was turned into a flag by `with_environment`, so it
        // counts here as on the command line: the environment beats the file either way.
        if on_command_line(&text_args, &name) || in_environment {
            continue;
        }
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for v in values {
            match v {
                toml::Value::Boolean(true) => extra.push(format!("--{name}")),
                toml::Value::Boolean(false) => {}
                toml::Value::String(s) => extra.push(format!("--{name}={s}")),
                toml::Value::Integer(n) => extra.push(format!("--{name}={n}")),
                other => {
                    return Err(format!(
                        "--config {path}: `{key}` has an unsupported value {other:?}"
                    ))
                }
            }
        }
    }
    let mut merged = vec![args[0].clone()];
    merged.extend(extra.into_iter().map(OsString::from));
    merged.extend(args.into_iter().skip(1));
    Ok(merged)
}

/// Whether `--name` (or `--name=…`) is among the arguments.
fn on_command_line(text_args: &[String], name: &str) -> bool {
    let (bare, with_value) = (format!("--{name}"), format!("--{name}="));
    text_args
        .iter()
        .any(|a| *a == bare || a.starts_with(&with_value))
}

/// The environment variable of a flag: `--foo-bar` ⇔ `RINGCAST_FOO_BAR`, with no
/// exceptions, so that a user can write any name from the flag alone.
fn env_name(long: &str) -> String {
    format!("RINGCAST_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// The long names of every flag that has an environment variable (all but the
/// generated --help and --version).
fn flag_longs(command: &clap::Command) -> impl Iterator<Item = &str> {
    command
        .get_arguments()
        .filter(|a| a.get_env().is_some())
        .filter_map(|a| a.get_long())
}

/// Names deployed before every name followed [`env_name`], still read (as the flag's
/// own variable) with a warning: `(old variable, flag)`.
const DEPRECATED_ENV: &[(&str, &str)] = &[
    ("RINGCAST_CORS_ORIGINS", "cors-origin"),
    ("RINGCAST_PUBLIC_TOPICS", "public-topic"),
];

/// `RINGCAST_*` variables of the project's own tooling, not the server's: scripts/test
/// exports RINGCAST_BIN to every server the tests start, and a warning there is noise.
const TOOLING_ENV: &[&str] = &["RINGCAST_BIN"];

/// Something about the environment worth a warning, logged once logging is set up.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EnvNotice {
    /// A deprecated name, read as `--flag` (`shadowed`: not read, the new name is set).
    Deprecated {
        variable: String,
        flag: &'static str,
        shadowed: bool,
    },
    /// A `RINGCAST_*` name that no flag reads, and the flag it probably meant (its
    /// long name).
    Unknown {
        variable: String,
        meant: Option<String>,
    },
}

/// Reads the `RINGCAST_*` variables of `env` (the process's, passed in for the tests):
/// a deprecated name becomes its flag ahead of the command line, unless the flag is
/// given there or its new name is set (an environment value, overridden as any other);
/// names that no flag reads become notices.
pub(crate) fn with_environment(
    mut args: Vec<OsString>,
    env: &[(OsString, OsString)],
) -> (Vec<OsString>, Vec<EnvNotice>) {
    let command = Flags::command();
    let longs: Vec<&str> = flag_longs(&command).collect();
    let names: Vec<String> = longs.iter().map(|l| env_name(l)).collect();
    let text_args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let set = |name: &str| env.iter().any(|(k, _)| k == name);
    let mut notices = Vec::new();
    for (key, value) in env {
        let Some((variable, suffix)) = key
            .to_str()
            .and_then(|k| Some((k, k.strip_prefix("RINGCAST_")?)))
        else {
            continue;
        };
        if names.iter().any(|n| n == variable) || TOOLING_ENV.contains(&variable) {
            continue;
        }
        if let Some(&(_, flag)) = DEPRECATED_ENV.iter().find(|(old, _)| *old == variable) {
            let shadowed = set(&env_name(flag));
            if !shadowed && !on_command_line(&text_args, flag) {
                let mut arg = OsString::from(format!("--{flag}="));
                arg.push(value);
                args.insert(1.min(args.len()), arg);
            }
            notices.push(EnvNotice::Deprecated {
                variable: variable.to_owned(),
                flag,
                shadowed,
            });
            continue;
        }
        let as_flag = suffix.to_ascii_lowercase().replace('_', "-");
        let meant = closest(&as_flag, longs.iter().copied()).map(str::to_owned);
        notices.push(EnvNotice::Unknown {
            variable: variable.to_owned(),
            meant,
        });
    }
    notices.sort_by(|a, b| a.variable().cmp(b.variable()));
    (args, notices)
}

impl EnvNotice {
    fn variable(&self) -> &str {
        match self {
            EnvNotice::Deprecated { variable, .. } | EnvNotice::Unknown { variable, .. } => {
                variable
            }
        }
    }

    pub(crate) fn log(&self) {
        match self {
            EnvNotice::Deprecated {
                variable,
                flag,
                shadowed: false,
            } => log::warn!(
                variable = variable.as_str(), use_instead = env_name(flag).as_str(), flag:% = format_args!("--{flag}");
                "deprecated environment variable; rename it"
            ),
            EnvNotice::Deprecated {
                variable,
                flag,
                shadowed: true,
            } => log::warn!(
                variable = variable.as_str(), use_instead = env_name(flag).as_str(), flag:% = format_args!("--{flag}");
                "deprecated environment variable ignored: its new name is set"
            ),
            EnvNotice::Unknown {
                variable,
                meant: Some(meant),
            } => log::warn!(
                variable = variable.as_str(), did_you_mean = env_name(meant).as_str(),
                flag:% = format_args!("--{meant}");
                "environment variable names no flag; ignored"
            ),
            EnvNotice::Unknown {
                variable,
                meant: None,
            } => {
                log::warn!(variable = variable.as_str(); "environment variable names no flag; ignored")
            }
        }
    }
}

/// The candidate closest to `name` by edit distance, if close enough to be a typo
/// (one edit per five characters, at least one); ties go to the first.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = 1 + name.len() / 5;
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over ASCII case-folded bytes (one row at a time).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &y) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(!x.eq_ignore_ascii_case(&y));
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn every_flag_reads_the_variable_named_after_it() {
        let command = Flags::command();
        let mut checked = 0;
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let long = arg
                .get_long()
                .unwrap_or_else(|| panic!("{id} has a long name"));
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("--{long} has a variable"));
            assert_eq!(env.to_str(), Some(env_name(long).as_str()), "--{long}");
            checked += 1;
        }
        assert!(checked >= 40, "only {checked} flags seen");
        assert_eq!(env_name("cors-origin"), "RINGCAST_CORS_ORIGIN");
    }

    #[test]
    fn deprecated_names_map_to_flags_and_are_not_flag_names() {
        let command = Flags::command();
        let longs: Vec<&str> = flag_longs(&command).collect();
        for (old, flag) in DEPRECATED_ENV {
            assert!(longs.contains(flag), "--{flag} exists");
            assert!(
                !longs.iter().any(|l| env_name(l) == *old),
                "{old} is no flag's own"
            );
        }
    }

    #[test]
    fn a_deprecated_name_is_read_as_its_flag_with_a_warning() {
        let env = os(&[("RINGCAST_CORS_ORIGINS", "*"), ("PATH", "/bin")]);
        let (got, notices) = with_environment(args(&["ringcast", "--workers", "1"]), &env);
        assert_eq!(
            got,
            args(&["ringcast", "--cors-origin=*", "--workers", "1"])
        );
        assert_eq!(
            notices,
            [EnvNotice::Deprecated {
                variable: "RINGCAST_CORS_ORIGINS".into(),
                flag: "cors-origin",
                shadowed: false
            }]
        );
        let flags = Flags::try_parse_from(got).unwrap();
        assert_eq!(flags.cors_origins, ["*"]);
    }

    #[test]
    fn the_command_line_and_the_new_name_beat_a_deprecated_name() {
        let env = os(&[("RINGCAST_PUBLIC_TOPICS", "a,b")]);
        let cli = args(&["ringcast", "--public-topic=c"]);
        let (got, _) = with_environment(cli.clone(), &env);
        assert_eq!(got, cli);

        let env = os(&[
            ("RINGCAST_PUBLIC_TOPICS", "a,b"),
            ("RINGCAST_PUBLIC_TOPIC", "c"),
        ]);
        let (got, notices) = with_environment(args(&["ringcast"]), &env);
        assert_eq!(got, args(&["ringcast"]));
        assert_eq!(
            notices,
            [EnvNotice::Deprecated {
                variable: "RINGCAST_PUBLIC_TOPICS".into(),
                flag: "public-topic",
                shadowed: true
            }]
        );
    }

    #[test]
    fn unknown_names_are_reported_with_the_flag_they_probably_meant() {
        let env = os(&[
            ("RINGCAST_HEARTBEET", "1s"),
            ("RINGCAST_BIN", "/x"),
            ("RINGCAST_HEARTBEAT", "1s"),
            ("RINGCAST_NOTHING_LIKE_IT", "1"),
            ("RINGCAST_MAX_CONECTIONS", "9"),
        ]);
        let (got, notices) = with_environment(args(&["ringcast"]), &env);
        assert_eq!(got, args(&["ringcast"]));
        let unknown = |variable: &str, meant: Option<&str>| EnvNotice::Unknown {
            variable: variable.into(),
            meant: meant.map(Into::into),
        };
        assert_eq!(
            notices,
            [
                unknown("RINGCAST_HEARTBEET", Some("heartbeat")),
                unknown("RINGCAST_MAX_CONECTIONS", Some("max-connections")),
                unknown("RINGCAST_NOTHING_LIKE_IT", None),
            ]
        );
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("HEARTBEAT", "HEARTBEET"), 1);
        assert_eq!(edit_distance("heartbeat", "HEARTBEAT"), 0);
        assert_eq!(edit_distance("", "TICK"), 4);
        assert_eq!(edit_distance("TICK", "TIK"), 1);
        assert_eq!(edit_distance("DRAIN", "RETRY"), 5);
        assert_eq!(closest("tik", ["tick", "retry"].into_iter()), Some("tick"));
        assert_eq!(closest("port", ["listen", "drain"].into_iter()), None);
    }

    #[test]
    fn config_file_keys_follow_the_flags() {
        let path = std::env::temp_dir().join(format!("ringcast-main-{}.toml", std::process::id()));
        std::fs::write(&path, "cors_origin = [\"*\"]\npublic-topic = \"a\"\n").unwrap();
        let cli = args(&["ringcast", "--config", path.to_str().unwrap()]);
        let got = with_config_file(cli);
        std::fs::write(&path, "hartbeat = \"1s\"\n").unwrap();
        let misspelt = with_config_file(args(&["ringcast", "--config", path.to_str().unwrap()]));
        std::fs::remove_file(&path).unwrap();
        let got = got.unwrap();
        assert_eq!(&got[1..3], args(&["--cors-origin=*", "--public-topic=a"]));
        let err = misspelt.unwrap_err();
        assert!(
            err.ends_with("unknown option `hartbeat`; did you mean `heartbeat`?"),
            "{err}"
        );
    }
}
