//! Render a node filter (or the event-history filter) to SQL. Both dialects implement the
//! semantics of [`kernelci_model::filter`] (the in-memory evaluator is the reference; a
//! property test checks all three agree):
//! - array leaves match when any element matches (`path=checkout`);
//! - comparisons only match values of the same JSON type (strings with strings...);
//! - `null` matches null or missing; `Ne`/`Nin` are exact negations, so they include
//!   missing fields.
//!
//! Values are always bound as arguments. Document paths are validated by the model (no
//! quotes, backslashes or control characters) and inlined as literals with single quotes
//! doubled, so that expression indexes on hot paths can be used.

use kernelci_model::filter::{ColumnType, Condition, Field, Op, Value};
use kernelci_model::time;

use super::{Arg, Args, Dialect};

/// What a condition reads: a typed column or a path in a JSON document column.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A column with its storage type.
    Col(&'a str, ColumnType),
    /// A path inside the JSON column `doc_col`.
    Doc(&'a str, &'a [String]),
}

/// The `WHERE` body for node conditions (`TRUE` when there are none).
pub fn render_node_conditions(conds: &[Condition], args: &mut Args) -> String {
    let parts: Vec<String> = conds
        .iter()
        .map(|c| {
            let target = match &c.field {
                Field::Column(col) => Target::Col(col.sql_name(), col.column_type()),
                Field::Doc(path) => Target::Doc("doc", path),
            };
            render(target, c.op, &c.value, args)
        })
        .collect();
    if parts.is_empty() {
        "1=1".into()
    } else {
        parts.join(" AND ")
    }
}

/// Render one condition.
pub fn render(target: Target<'_>, op: Op, value: &Value, args: &mut Args) -> String {
    match target {
        Target::Col(col, ty) => render_col(col, ty, op, value, args),
        Target::Doc(doc, path) => render_doc(doc, path, op, value, args),
    }
}

fn col_arg(ty: ColumnType, v: &Value) -> Option<Arg> {
    match (ty, v) {
        (ColumnType::Text, Value::Str(s)) => Some(Arg::Str(s.clone())),
        (ColumnType::Time, Value::Time(t)) => Some(Arg::I64(time::to_micros(t))),
        (ColumnType::Int, Value::Int(n)) => Some(Arg::I64(*n)),
        (ColumnType::Bool, Value::Bool(b)) => Some(Arg::Bool(*b)),
        _ => None,
    }
}

fn render_col(col: &str, ty: ColumnType, op: Op, value: &Value, args: &mut Args) -> String {
    let collate = if ty == ColumnType::Text && args.dialect == Dialect::Postgres {
        " COLLATE \"C\""
    } else {
        ""
    };
    let positive = |op: Op, args: &mut Args| -> String {
        match (op, value) {
            (Op::Eq | Op::Ne, Value::Null) => format!("{col} IS NULL"),
            (Op::Lte | Op::Gte, Value::Null) => format!("{col} IS NULL"),
            (Op::Lt | Op::Gt, Value::Null) => "1=0".into(),
            (Op::In | Op::Nin, Value::List(items)) => {
                let phs: Vec<String> = items
                    .iter()
                    .filter_map(|v| col_arg(ty, v))
                    .map(|a| args.push(a))
                    .collect();
                if phs.is_empty() {
                    "1=0".into()
                } else {
                    format!("{col} IN ({})", phs.join(", "))
                }
            }
            (Op::Re, Value::Str(p)) => {
                let ph = args.push(Arg::Str(regex_arg(args.dialect, p)));
                let cast = if ty == ColumnType::Text {
                    col.to_string()
                } else {
                    format!("CAST({col} AS TEXT)")
                };
                match args.dialect {
                    Dialect::Sqlite => format!("{cast} REGEXP {ph}"),
                    Dialect::Postgres => format!("{cast} ~ {ph}"),
                }
            }
            (op, v) => match col_arg(ty, v) {
                None => "1=0".into(),
                Some(a) => {
                    let ph = args.push(a);
                    let sym = match op {
                        Op::Lt => "<",
                        Op::Lte => "<=",
                        Op::Gt => ">",
                        Op::Gte => ">=",
                        _ => "=",
                    };
                    format!("{col}{collate} {sym} {ph}")
                }
            },
        }
    };
    let f = falsy(args.dialect);
    match op {
        Op::Ne => format!("NOT COALESCE({}, {f})", positive(Op::Eq, args)),
        Op::Nin => format!("NOT COALESCE({}, {f})", positive(Op::In, args)),
        op => positive(op, args),
    }
}

/// The pattern as the dialect spells it (validated by the model's filter parser).
fn regex_arg(d: Dialect, pattern: &str) -> String {
    match d {
        Dialect::Sqlite => pattern.to_string(),
        Dialect::Postgres => kernelci_model::regex_filter::postgres_pattern(pattern)
            .unwrap_or_else(|_| pattern.to_string()),
    }
}

fn falsy(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "0",
        Dialect::Postgres => "false",
    }
}

/// `$."a"."b"` for SQLite, `{a,b}` for PostgreSQL, as SQL string literals.
fn path_literal(d: Dialect, path: &[String]) -> String {
    let raw = match d {
        Dialect::Sqlite => {
            let mut s = String::from("$");
            for seg in path {
                s.push_str(&format!(".\"{seg}\""));
            }
            s
        }
        Dialect::Postgres => format!(
            "{{{}}}",
            path.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(",")
        ),
    };
    format!("'{}'", raw.replace('\'', "''"))
}

/// A predicate on one JSON scalar given its value and type expressions.
fn scalar_pred(d: Dialect, val: &str, ty: &str, op: Op, v: &Value, args: &mut Args) -> String {
    let sym = match op {
        Op::Lt => "<",
        Op::Lte => "<=",
        Op::Gt => ">",
        Op::Gte => ">=",
        _ => "=",
    };
    match (d, op, v) {
        (_, Op::Re, Value::Str(p)) => {
            let ph = args.push(Arg::Str(regex_arg(args.dialect, p)));
            match d {
                Dialect::Sqlite => format!("({val} REGEXP {ph} AND +{ty} = 'text')"),
                Dialect::Postgres => format!("({ty} = 'string' AND ({val} #>> '{{}}') ~ {ph})"),
            }
        }
        (_, Op::Re, _) => "1=0".into(),
        (Dialect::Sqlite, _, Value::Str(s)) => {
            let ph = args.push(Arg::Str(s.clone()));
            format!("({val} {sym} {ph} AND +{ty} = 'text')")
        }
        (Dialect::Postgres, _, Value::Str(s)) => {
            let ph = args.push(Arg::Str(s.clone()));
            format!("({ty} = 'string' AND ({val} #>> '{{}}') COLLATE \"C\" {sym} {ph})")
        }
        (Dialect::Sqlite, _, Value::Int(n)) => {
            let ph = args.push(Arg::I64(*n));
            format!("({val} {sym} {ph} AND +{ty} IN ('integer', 'real'))")
        }
        (Dialect::Postgres, _, Value::Int(n)) => {
            let ph = args.push(Arg::I64(*n));
            format!("({ty} = 'number' AND ({val} #>> '{{}}')::numeric {sym} {ph})")
        }
        (Dialect::Sqlite, _, Value::Bool(b)) => {
            let t = if *b { "'true'" } else { "'false'" };
            match op {
                Op::Eq => format!("({ty} = {t})"),
                _ => format!(
                    "({ty} IN ('true', 'false') AND ({ty} = 'true') {sym} {})",
                    u8::from(*b)
                ),
            }
        }
        (Dialect::Postgres, _, Value::Bool(b)) => {
            format!("({ty} = 'boolean' AND ({val})::boolean {sym} {b})")
        }
        _ => "1=0".into(),
    }
}

/// "Some element (or the scalar itself) satisfies `pred`", never NULL.
fn any_match(doc: &str, path: &[String], op: Op, v: &Value, args: &mut Args) -> String {
    let d = args.dialect;
    let p = path_literal(d, path);
    match d {
        Dialect::Sqlite => {
            let ty = format!("json_type({doc}, {p})");
            let direct = scalar_pred(d, &format!("json_extract({doc}, {p})"), &ty, op, v, args);
            let elem = scalar_pred(d, "je.value", "je.type", op, v, args);
            // `direct` only holds for scalars (it checks the JSON type), so an OR replaces the
            // CASE; each arm is then usable with the expression indexes on hot paths
            // (`json_extract` for the value, `json_type` for the rare array case).
            format!(
                "({direct} OR ({ty} = 'array' AND EXISTS (SELECT 1 FROM json_each({doc}, {p}) AS je WHERE {elem})))"
            )
        }
        Dialect::Postgres => {
            let j = format!("({doc} #> {p})");
            let direct = scalar_pred(d, &j, &format!("jsonb_typeof({j})"), op, v, args);
            let elem = scalar_pred(d, "je.x", "jsonb_typeof(je.x)", op, v, args);
            format!(
                "(CASE WHEN jsonb_typeof({j}) = 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({j}) AS je(x) WHERE {elem}) ELSE {direct} END)"
            )
        }
    }
}

fn is_null_or_missing(doc: &str, path: &[String], d: Dialect) -> String {
    let p = path_literal(d, path);
    match d {
        Dialect::Sqlite => format!("COALESCE(json_type({doc}, {p}) = 'null', 1)"),
        Dialect::Postgres => format!("COALESCE(jsonb_typeof({doc} #> {p}) = 'null', true)"),
    }
}

fn render_doc(doc: &str, path: &[String], op: Op, value: &Value, args: &mut Args) -> String {
    let d = args.dialect;
    let positive = |op: Op, args: &mut Args| -> String {
        match (op, value) {
            (Op::Eq | Op::Ne | Op::Lte | Op::Gte, Value::Null) => is_null_or_missing(doc, path, d),
            (_, Value::Null) => "1=0".into(),
            (Op::In | Op::Nin, Value::List(items)) => {
                let ors: Vec<String> = items
                    .iter()
                    .map(|v| match d {
                        Dialect::Postgres => contains(doc, path, v, args),
                        Dialect::Sqlite => any_match(doc, path, Op::Eq, v, args),
                    })
                    .collect();
                if ors.is_empty() {
                    "1=0".into()
                } else {
                    format!("({})", ors.join(" OR "))
                }
            }
            (Op::Eq | Op::Ne, v) if d == Dialect::Postgres => contains(doc, path, v, args),
            (Op::Ne, v) => any_match(doc, path, Op::Eq, v, args),
            (op, v) => any_match(doc, path, op, v, args),
        }
    };
    let f = falsy(args.dialect);
    match op {
        Op::Ne => format!("NOT COALESCE({}, {f})", positive(Op::Eq, args)),
        Op::Nin => format!("NOT COALESCE({}, {f})", positive(Op::In, args)),
        op => positive(op, args),
    }
}

/// PostgreSQL equality on a document path as JSONB containment: GIN-indexable, and with the
/// same any-element semantics (`{"p": v}` or `{"p": [v]}`).
fn contains(doc: &str, path: &[String], v: &Value, args: &mut Args) -> String {
    let lit = containment(path, v);
    let wrapped = containment(path, &Value::List(vec![v.clone()]));
    match (lit, wrapped) {
        (Some(a), Some(b)) => {
            let pa = args.push(Arg::Str(a));
            let pb = args.push(Arg::Str(b));
            format!("({doc} @> {pa}::jsonb OR {doc} @> {pb}::jsonb)")
        }
        _ => any_match(doc, path, Op::Eq, v, args),
    }
}

/// `{"a": {"b": <v>}}` for a containment test (None for values JSON cannot hold exactly).
fn containment(path: &[String], v: &Value) -> Option<String> {
    let leaf = match v {
        Value::Str(s) => serde_json::Value::from(s.clone()),
        Value::Int(n) => serde_json::Value::from(*n),
        Value::Bool(b) => serde_json::Value::from(*b),
        Value::List(items) if items.len() == 1 => serde_json::Value::Array(vec![match &items[0] {
            Value::Str(s) => s.clone().into(),
            Value::Int(n) => (*n).into(),
            Value::Bool(b) => (*b).into(),
            _ => return None,
        }]),
        _ => return None,
    };
    let mut cur = leaf;
    for seg in path.iter().rev() {
        let mut m = serde_json::Map::new();
        m.insert(seg.clone(), cur);
        cur = serde_json::Value::Object(m);
    }
    Some(cur.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelci_model::NodeFilter;

    #[test]
    fn renders_with_bound_values_only() {
        let f =
            NodeFilter::parse([("name", "x'; DROP TABLE nodes; --"), ("data.a'b", "1")]).unwrap();
        let mut args = Args::new(Dialect::Sqlite);
        let sql = render_node_conditions(&f.conditions, &mut args);
        assert!(!sql.contains("DROP TABLE"), "{sql}");
        assert!(sql.contains("'$.\"data\".\"a''b\"'"), "{sql}");
        assert_eq!(args.values[0], Arg::Str("x'; DROP TABLE nodes; --".into()));
    }
}
