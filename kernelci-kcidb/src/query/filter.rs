//! The dashboard's result filters (specs/dashboard-cli-peers.md §1.3): `filter_<field>` or
//! `filter_<field>_<op>` with `op` in `exact, in, gt, gte, lt, lte, like`. Values of one
//! field OR together, fields AND together. Unknown fields are ignored (upstream drops
//! them too); a bad operator or value for a known field is an error.

use super::QueryError;
use super::sql::{Bind, Sql};

/// Which result list a filter is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultKind {
    /// Builds.
    Build,
    /// Boots: tests whose path is `boot` or starts with `boot.`.
    Boot,
    /// Every other test.
    Test,
}

/// A filterable field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The result's own origin (`origin`).
    Origin,
    /// `build.origin`, `boot.origin`, `test.origin`: the origin of one kind only.
    KindOrigin(ResultKind),
    /// The build's `architecture`.
    Architecture,
    /// The build's `config_name`.
    ConfigName,
    /// The build's `compiler`.
    Compiler,
    /// The checkout's `tree_name`.
    TreeName,
    /// `build.status`, `boot.status`, `test.status`.
    Status(ResultKind),
    /// `duration` / `build.duration`, `boot.duration`, `test.duration` (seconds).
    Duration(ResultKind),
    /// `boot.path`, `test.path`.
    Path(ResultKind),
    /// `test.hardware` / `hardware`: the platform or one of the compatibles.
    Hardware,
    /// `boot.platform`, `test.platform`: `environment.misc.platform`.
    Platform(ResultKind),
    /// `lab`, `boot.lab`, `test.lab`: the test's `misc.lab`.
    Lab,
}

impl Field {
    /// The field of an upstream filter name, `None` for one we do not know.
    pub fn from_name(name: &str) -> Option<Field> {
        use ResultKind::{Boot, Build, Test};
        Some(match name {
            "origin" => Field::Origin,
            "build.origin" => Field::KindOrigin(Build),
            "boot.origin" => Field::KindOrigin(Boot),
            "test.origin" => Field::KindOrigin(Test),
            "architecture" => Field::Architecture,
            "config_name" => Field::ConfigName,
            "compiler" => Field::Compiler,
            "tree_name" => Field::TreeName,
            "build.status" => Field::Status(Build),
            "boot.status" => Field::Status(Boot),
            "test.status" => Field::Status(Test),
            "duration" | "build.duration" => Field::Duration(Build),
            "boot.duration" => Field::Duration(Boot),
            "test.duration" => Field::Duration(Test),
            "boot.path" => Field::Path(Boot),
            "test.path" => Field::Path(Test),
            "hardware" | "test.hardware" => Field::Hardware,
            "boot.platform" => Field::Platform(Boot),
            "test.platform" => Field::Platform(Test),
            "lab" | "boot.lab" | "test.lab" => Field::Lab,
            _ => return None,
        })
    }

    /// Whether the field restricts results of `kind`.
    pub fn applies_to(self, kind: ResultKind) -> bool {
        match self {
            Field::Origin
            | Field::Architecture
            | Field::ConfigName
            | Field::Compiler
            | Field::TreeName => true,
            Field::KindOrigin(k) | Field::Status(k) | Field::Duration(k) => k == kind,
            Field::Path(k) | Field::Platform(k) => k == kind,
            Field::Hardware | Field::Lab => kind != ResultKind::Build,
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Field::Duration(_))
    }

    fn is_status(self) -> bool {
        matches!(self, Field::Status(_))
    }

    /// The SQL expression of the field (aliases `b` build, `t` test, `c` checkout).
    fn expr(self, sql: &Sql, kind: ResultKind) -> String {
        let own = if kind == ResultKind::Build { "b" } else { "t" };
        match self {
            Field::Origin | Field::KindOrigin(_) => format!("{own}.origin"),
            Field::Architecture => "b.architecture".into(),
            Field::ConfigName => "b.config_name".into(),
            Field::Compiler => "b.compiler".into(),
            Field::TreeName => "c.tree_name".into(),
            Field::Status(_) => format!("{own}.status"),
            Field::Duration(_) => format!("{own}.duration"),
            Field::Path(_) => "t.path".into(),
            Field::Hardware | Field::Platform(_) => {
                sql.json_field("t.environment_misc", "platform")
            }
            Field::Lab => sql.json_field("t.misc", "lab"),
        }
    }
}

/// A filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Equal to one of the values.
    Exact,
    /// Equal to one of the comma-separated values.
    In,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// SQL `LIKE` pattern (`%`, `_`).
    Like,
}

impl Op {
    fn from_name(name: &str) -> Option<Op> {
        Some(match name {
            "exact" => Op::Exact,
            "in" => Op::In,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "like" => Op::Like,
            _ => return None,
        })
    }

    fn comparison(self) -> Option<&'static str> {
        match self {
            Op::Gt => Some(">"),
            Op::Gte => Some(">="),
            Op::Lt => Some("<"),
            Op::Lte => Some("<="),
            _ => None,
        }
    }
}

/// The statuses a status filter accepts (`NULL`: no status).
pub const STATUSES: [&str; 7] = ["PASS", "FAIL", "ERROR", "MISS", "SKIP", "DONE", "NULL"];

/// One filter: a field, an operator and the values it ORs together.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    field: Field,
    op: Op,
    values: Vec<String>,
}

impl Filter {
    /// A filter from an upstream query parameter without its `filter_` prefix
    /// (`architecture`, `build.status_in`, `test.duration_gte`...) and its values.
    /// `Ok(None)` for an unknown field (ignored, as upstream does).
    pub fn from_param(key: &str, values: &[String]) -> Result<Option<Filter>, QueryError> {
        let (field, op) = match Field::from_name(key) {
            Some(f) => (f, Op::Exact),
            None => {
                let Some((name, op_name)) = key.rsplit_once('_') else {
                    return Ok(None);
                };
                let Some(field) = Field::from_name(name) else {
                    return Ok(None);
                };
                let op = Op::from_name(op_name).ok_or_else(|| QueryError::Filter {
                    param: format!("filter_{key}"),
                    reason: format!(
                        "unknown operator {op_name:?} (use exact, in, gt, gte, lt, lte or like)"
                    ),
                })?;
                (field, op)
            }
        };
        Filter::new(field, op, values)
            .map(Some)
            .map_err(|reason| QueryError::Filter {
                param: format!("filter_{key}"),
                reason,
            })
    }

    /// A filter, checking that the operator fits the field and the values parse.
    pub fn new(field: Field, op: Op, values: &[String]) -> Result<Filter, String> {
        let mut out: Vec<String> = Vec::new();
        for v in values {
            if op == Op::In {
                out.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
            } else {
                out.push(v.clone());
            }
        }
        if out.is_empty() {
            return Err("no value given".into());
        }
        if op.comparison().is_some() && !field.numeric() {
            return Err("gt, gte, lt and lte only apply to durations".into());
        }
        if op == Op::Like && (field.numeric() || field.is_status()) {
            return Err("like only applies to text fields".into());
        }
        if field.numeric() {
            for v in &out {
                if v.trim().parse::<f64>().map_or(true, |f| !f.is_finite()) {
                    return Err(format!("{v:?} is not a number"));
                }
            }
        }
        if field.is_status() {
            for v in &mut out {
                let upper = v.to_ascii_uppercase();
                if !STATUSES.contains(&upper.as_str()) {
                    return Err(format!(
                        "unknown status {v:?} (use PASS, FAIL, ERROR, MISS, SKIP, DONE or NULL)"
                    ));
                }
                *v = upper;
            }
        }
        Ok(Filter {
            field,
            op,
            values: out,
        })
    }

    /// The field.
    pub fn field(&self) -> Field {
        self.field
    }

    /// Appends ` AND (...)` for this filter to `sql` when it applies to `kind`.
    pub(crate) fn push_condition(&self, sql: &mut Sql, kind: ResultKind) {
        if !self.field.applies_to(kind) {
            return;
        }
        let expr = self.field.expr(sql, kind);
        sql.push(" AND (");
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                sql.push(" OR ");
            }
            if let Some(cmp) = self.op.comparison() {
                let f = v.trim().parse::<f64>().unwrap_or(0.0);
                sql.push(&format!("{expr} {cmp} ")).bind(Bind::Float(f));
            } else if self.field.numeric() {
                let f = v.trim().parse::<f64>().unwrap_or(0.0);
                sql.push(&format!("{expr} = ")).bind(Bind::Float(f));
            } else if self.field.is_status() && v == "NULL" {
                sql.push(&format!("{expr} IS NULL"));
            } else if self.op == Op::Like {
                sql.push(&format!("{expr} LIKE ")).text(v);
            } else if self.field == Field::Hardware {
                sql.push(&format!("{expr} = ")).text(v).push(" OR ");
                sql.list_contains("t.environment_compatible", v);
            } else {
                sql.push(&format!("{expr} = ")).text(v);
            }
        }
        sql.push(")");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_upstream_names() {
        let f = Filter::from_param("build.status_in", &vals(&["pass,fail"]))
            .unwrap()
            .unwrap();
        assert_eq!(f.field(), Field::Status(ResultKind::Build));
        assert_eq!(f.values, ["PASS", "FAIL"]);
        assert!(
            Filter::from_param("config_name", &vals(&["x"]))
                .unwrap()
                .is_some()
        );
        assert!(
            Filter::from_param("start_date", &vals(&["x"]))
                .unwrap()
                .is_none()
        );
        assert!(
            Filter::from_param("test.duration_gte", &vals(&["1.5"]))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn rejects_bad_values() {
        let e = Filter::from_param("test.status", &vals(&["PASSED"])).unwrap_err();
        assert!(e.to_string().contains("filter_test.status"), "{e}");
        assert!(Filter::from_param("test.duration_gt", &vals(&["abc"])).is_err());
        assert!(Filter::from_param("architecture_gt", &vals(&["1"])).is_err());
        assert!(Filter::from_param("architecture_near", &vals(&["1"])).is_err());
    }
}
