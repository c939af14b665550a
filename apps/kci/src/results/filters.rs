//! kci-dev's client-side filters (`libs/filters.py`, `libs/job_filters.py`): fnmatch
//! patterns, `--git-branch`, and the `--filter FILE` YAML file.
//!
//! The filter file (kci-dev's `parse_filter_file`) is a YAML mapping with up to three lists
//! of patterns: `hardware` (a boot's or test's platform or one of its compatibles), `test`
//! (the test path) and `tree` (the tree name). Each list becomes one regular expression
//! `^(p1|p2|...)$` in which `.` is literal and `*` is any text; every other character keeps
//! its regular-expression meaning, as in kci-dev (so `?`, `+`, `[...]` are regex syntax, not
//! globs). A result passes when every list present matches it. The YAML is read with the
//! scheduler's parser (`kernelci_sched::yaml`, PyYAML's data).

use std::path::Path;

use regex::Regex;
use serde_json::Value;

use super::client::Fail;

/// Python's `fnmatch.fnmatch` (case-sensitive, as on Linux): `*`, `?`, `[seq]`, `[!seq]`.
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    glob_regex(pattern).is_some_and(|r| r.is_match(name))
}

/// The regular expression of an fnmatch pattern (`fnmatch.translate`).
fn glob_regex(pattern: &str) -> Option<Regex> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("(?s)^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                // A class runs to the next `]` (a `]` first, or after `!`, is literal).
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    re.push_str("\\[");
                    continue;
                }
                let mut body: String = chars[i..j].iter().collect();
                i = j + 1;
                let negate = body.starts_with('!');
                if negate {
                    body.remove(0);
                }
                let escaped = body.replace('\\', "\\\\").replace('[', "\\[");
                re.push('[');
                if negate {
                    re.push('^');
                }
                re.push_str(&escaped);
                re.push(']');
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).ok()
}

/// The lists of a `--filter FILE`, each as kci-dev's regular expression.
#[derive(Debug, Default)]
pub struct FilterFile {
    hardware: Option<Regex>,
    test: Option<Regex>,
    tree: Option<Regex>,
}

/// kci-dev's `filter_array2regex`.
fn array_regex(patterns: &[String]) -> String {
    format!("^({})$", patterns.join("|"))
        .replace('.', "\\.")
        .replace('*', ".*")
}

impl FilterFile {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<FilterFile, Fail> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Fail::input(format!("--filter {}: {e}", path.display())))?;
        FilterFile::parse(&text, &path.display().to_string())
    }

    /// Parses the YAML text (`name` for errors). An empty document filters nothing.
    pub fn parse(text: &str, name: &str) -> Result<FilterFile, Fail> {
        let doc = kernelci_sched::yaml::from_str(text, name)
            .map_err(|e| Fail::input(format!("--filter {e}")))?;
        let map = match doc {
            Value::Null => return Ok(FilterFile::default()),
            Value::Object(m) => m,
            _ => {
                return Err(Fail::input(format!(
                    "--filter {name}: expected a mapping with `hardware`, `test` or `tree` lists"
                )));
            }
        };
        let list = |key: &str| -> Result<Option<Regex>, Fail> {
            let Some(v) = map.get(key) else {
                return Ok(None);
            };
            let items = v.as_array().ok_or_else(|| {
                Fail::input(format!(
                    "--filter {name}: `{key}` is not a list of patterns"
                ))
            })?;
            let mut patterns = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => patterns.push(s.clone()),
                    Value::Number(n) => patterns.push(n.to_string()),
                    _ => {
                        return Err(Fail::input(format!(
                            "--filter {name}: `{key}` holds {item}, not a pattern"
                        )));
                    }
                }
            }
            let re = array_regex(&patterns);
            Regex::new(&re).map(Some).map_err(|e| {
                Fail::input(format!("--filter {name}: `{key}`: bad pattern {re:?}: {e}"))
            })
        };
        Ok(FilterFile {
            hardware: list("hardware")?,
            test: list("test")?,
            tree: list("tree")?,
        })
    }

    /// Whether the file has any list.
    pub fn active(&self) -> bool {
        self.hardware.is_some() || self.test.is_some() || self.tree.is_some()
    }

    /// Whether a boot or test passes (`build`: a build, which only `tree` applies to).
    pub fn keeps(&self, item: &Value, build: bool) -> bool {
        if let Some(re) = &self.tree
            && !re.is_match(item["tree_name"].as_str().unwrap_or(""))
        {
            return false;
        }
        if build {
            return true;
        }
        if let Some(re) = &self.hardware {
            let platform = item["environment_misc"]["platform"].as_str();
            let compatibles = item["environment_compatible"].as_array();
            let hit = platform.is_some_and(|p| re.is_match(p))
                || compatibles
                    .is_some_and(|l| l.iter().filter_map(Value::as_str).any(|c| re.is_match(c)));
            if !hit {
                return false;
            }
        }
        if let Some(re) = &self.test
            && !re.is_match(item["path"].as_str().unwrap_or(""))
        {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("linux-6.14.y", "linux-*"));
        assert!(fnmatch("master", "ma?ter"));
        assert!(fnmatch("a.b", "a.b"));
        assert!(!fnmatch("axb", "a.b"));
        assert!(fnmatch("b1", "[abc]1"));
        assert!(!fnmatch("d1", "[abc]1"));
        assert!(fnmatch("d1", "[!abc]1"));
        assert!(fnmatch("x[", "x["));
        assert!(!fnmatch("master2", "master"));
    }

    #[test]
    fn filter_file_as_kci_dev() {
        let f = FilterFile::parse(
            "hardware:\n  - beaglebone-*\n  - ti,am335x*\ntest:\n  - baseline.*\n",
            "f.yaml",
        )
        .unwrap();
        assert!(f.active());
        let t = json!({"path": "baseline.login", "environment_misc": {"platform": "beaglebone-black"},
            "environment_compatible": [], "tree_name": "mainline"});
        assert!(f.keeps(&t, false));
        let other =
            json!({"path": "baselinexlogin", "environment_misc": {"platform": "beaglebone-black"}});
        assert!(!f.keeps(&other, false));
        let compat = json!({"path": "baseline.dmesg", "environment_misc": {"platform": "x"},
            "environment_compatible": ["ti,am335x-bone-black"]});
        assert!(f.keeps(&compat, false));
        // Builds: only `tree` applies.
        assert!(f.keeps(&json!({"tree_name": "x"}), true));
        assert!(!FilterFile::parse("", "e").unwrap().active());
        assert!(FilterFile::parse("- a\n", "e").is_err());
        assert!(FilterFile::parse("test: baseline\n", "e").is_err());
        let tree = FilterFile::parse("tree: [main*]\n", "t").unwrap();
        assert!(tree.keeps(&json!({"tree_name": "mainline"}), true));
        assert!(!tree.keeps(&json!({"tree_name": null}), true));
    }
}
