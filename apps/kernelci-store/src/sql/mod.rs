//! SQL text shared by both backends: the dialect differences, bind arguments, and the
//! rendering of a [`kernelci_model::NodeFilter`] to a `WHERE` clause.

pub mod filter;
pub mod schema;

/// The two SQL dialects we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3 (bundled) with JSON1 and the sqlx REGEXP function.
    Sqlite,
    /// PostgreSQL (JSONB).
    Postgres,
}

/// One bind argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// Text.
    Str(String),
    /// Nullable text.
    OptStr(Option<String>),
    /// Integer.
    I64(i64),
    /// Nullable integer.
    OptI64(Option<i64>),
    /// Boolean.
    Bool(bool),
}

/// Collects bind arguments and hands out placeholders in the dialect's syntax.
#[derive(Debug)]
pub struct Args {
    /// The dialect placeholders are written for.
    pub dialect: Dialect,
    /// The arguments, in placeholder order.
    pub values: Vec<Arg>,
}

impl Args {
    /// Empty.
    pub fn new(dialect: Dialect) -> Self {
        Args {
            dialect,
            values: Vec::new(),
        }
    }

    /// Add an argument; returns its placeholder (`?3` or `$3`), usable several times.
    pub fn push(&mut self, a: Arg) -> String {
        self.values.push(a);
        placeholder(self.dialect, self.values.len())
    }
}

/// The placeholder for argument number `n` (1-based).
pub fn placeholder(d: Dialect, n: usize) -> String {
    match d {
        Dialect::Sqlite => format!("?{n}"),
        Dialect::Postgres => format!("${n}"),
    }
}

/// Rewrite `?` placeholders of a static statement to `$1..$n` for PostgreSQL, and the
/// `{json}`/`{text}` markers to each dialect's JSON column cast.
pub fn adapt(d: Dialect, sql: &str) -> String {
    match d {
        Dialect::Sqlite => sql.replace("{json}", "").replace("{text}", ""),
        Dialect::Postgres => {
            let sql = sql.replace("{json}", "::jsonb").replace("{text}", "::text");
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapts_placeholders() {
        assert_eq!(
            adapt(Dialect::Postgres, "a = ? AND b = ?{json}"),
            "a = $1 AND b = $2::jsonb"
        );
        assert_eq!(
            adapt(Dialect::Sqlite, "a = ? AND b = ?{json}"),
            "a = ? AND b = ?"
        );
    }
}
