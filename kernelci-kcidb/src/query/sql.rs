//! SQL text with bound parameters for either backend: `?` placeholders (numbered `$n` on
//! PostgreSQL when rendered) and the dialect's spelling of times, JSON fields and lists.

use crate::db::KcidbDb;

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    Float(f64),
    Int(i64),
}

/// A statement being built: text with `?` placeholders and their values, in order.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pg: bool,
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    /// An empty statement for `db`'s dialect.
    pub(crate) fn new(db: &KcidbDb) -> Sql {
        Sql {
            pg: matches!(db, KcidbDb::Postgres(_)),
            text: String::new(),
            binds: Vec::new(),
        }
    }

    /// Appends SQL text (never data: values go through [`Sql::bind`]).
    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind(&mut self, value: Bind) -> &mut Sql {
        self.text.push('?');
        self.binds.push(value);
        self
    }

    /// Appends a text placeholder.
    pub(crate) fn text(&mut self, value: &str) -> &mut Sql {
        self.bind(Bind::Text(value.to_string()))
    }

    /// Appends a placeholder for a time (RFC 3339 text in UTC with microseconds).
    pub(crate) fn time(&mut self, value: &chrono::DateTime<chrono::Utc>) -> &mut Sql {
        let text = value.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        if self.pg {
            self.push("CAST(").text(&text).push(" AS TIMESTAMPTZ)")
        } else {
            self.text(&text)
        }
    }

    /// Appends `(?, ?, ...)` for `values` (at least one).
    pub(crate) fn list(&mut self, values: &[String]) -> &mut Sql {
        self.push("(");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(v);
        }
        self.push(")")
    }

    /// A time column as sortable RFC 3339 text in UTC with microseconds.
    /// `col` ordered by bytes on both backends (PostgreSQL's default collation is not).
    pub(crate) fn bytes_order(&self, col: &str) -> String {
        if self.pg {
            format!("{col} COLLATE \"C\"")
        } else {
            col.to_string()
        }
    }

    pub(crate) fn time_col(&self, col: &str) -> String {
        if self.pg {
            format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        } else {
            col.to_string()
        }
    }

    /// A whole-object JSON column as text.
    pub(crate) fn json_col(&self, col: &str) -> String {
        format!("CAST({col} AS TEXT)")
    }

    /// A list column as JSON text.
    pub(crate) fn list_col(&self, col: &str) -> String {
        if self.pg {
            format!("CAST(array_to_json({col}) AS TEXT)")
        } else {
            col.to_string()
        }
    }

    /// The string field `key` of a JSON object column.
    pub(crate) fn json_field(&self, col: &str, key: &str) -> String {
        if self.pg {
            format!("({col}->>'{key}')")
        } else {
            format!("json_extract({col}, '$.{key}')")
        }
    }

    /// Whether the list column `col` holds the next bound value: appends the condition.
    pub(crate) fn list_contains(&mut self, col: &str, value: &str) -> &mut Sql {
        if self.pg {
            self.text(value).push(&format!(" = ANY({col})"))
        } else {
            self.push(&format!(
                "EXISTS (SELECT 1 FROM json_each({col}) WHERE json_each.value = "
            ))
            .text(value)
            .push(")")
        }
    }

    /// The text for the backend (`$n` placeholders on PostgreSQL).
    pub(crate) fn render(&self) -> String {
        if !self.pg {
            return self.text.clone();
        }
        let mut out = String::with_capacity(self.text.len() + 16);
        let mut n = 0;
        for ch in self.text.chars() {
            if ch == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(ch);
            }
        }
        out
    }

    /// The bound values, in order.
    pub(crate) fn binds(&self) -> &[Bind] {
        &self.binds
    }
}

/// Runs `$sql` on `$db` and returns every row decoded as the tuple type `$ty`.
macro_rules! fetch_all {
    ($db:expr, $sql:expr, $ty:ty) => {{
        let sql: &$crate::query::sql::Sql = &$sql;
        let text = sql.render();
        match $db {
            $crate::db::KcidbDb::Sqlite(pool) => {
                let mut q = sqlx::query_as::<_, $ty>(sqlx::AssertSqlSafe(text));
                for b in sql.binds() {
                    q = match b {
                        $crate::query::sql::Bind::Text(s) => q.bind(s.clone()),
                        $crate::query::sql::Bind::Float(f) => q.bind(*f),
                        $crate::query::sql::Bind::Int(i) => q.bind(*i),
                    };
                }
                q.fetch_all(pool).await?
            }
            $crate::db::KcidbDb::Postgres(pool) => {
                let mut q = sqlx::query_as::<_, $ty>(sqlx::AssertSqlSafe(text));
                for b in sql.binds() {
                    q = match b {
                        $crate::query::sql::Bind::Text(s) => q.bind(s.clone()),
                        $crate::query::sql::Bind::Float(f) => q.bind(*f),
                        $crate::query::sql::Bind::Int(i) => q.bind(*i),
                    };
                }
                q.fetch_all(pool).await?
            }
        }
    }};
}
pub(crate) use fetch_all;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering() {
        let mut s = Sql {
            pg: true,
            text: String::new(),
            binds: Vec::new(),
        };
        s.push("a = ")
            .text("x")
            .push(" AND b IN ")
            .list(&["1".into(), "2".into()]);
        assert_eq!(s.render(), "a = $1 AND b IN ($2, $3)");
        assert_eq!(s.binds().len(), 3);
    }
}
