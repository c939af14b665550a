//! `kernelci admin import-maestro`: nodes, users and groups from `mongoexport` files of an
//! upstream Maestro API database.
//!
//! Input: one file per collection (`node`, `user`, `usergroup`), line-delimited (the
//! `mongoexport` default) or one JSON array (`--jsonArray`), in MongoDB Extended JSON
//! (relaxed or canonical: `{"$oid": ..}`, `{"$date": "..Z"}`, `{"$date": {"$numberLong":
//! ..}}`, `{"$numberLong": ..}`, `{"$numberInt": ..}`, `{"$numberDouble": ..}`,
//! `{"$numberDecimal": ..}`; other `$` wrappers are kept as they are). Ids are kept, so
//! `maestro:<id>` KCIDB ids and stored `parent` links still match; users keep their bcrypt
//! or argon2id hashes, so passwords keep working.
//!
//! Writes: nodes in batches of [`BATCH`], one transaction each, **without events** (the
//! pipeline must not act on history); a node already stored identically is counted
//! `unchanged`, one that differs is replaced (`updated`), so a second run after the
//! upstream moved on is a delta sync. Users and groups one at a time; one already stored
//! under its id is kept as it is (`unchanged`: a login here rehashes bcrypt to argon2id, a
//! password changed here must stay). A username, e-mail or group name taken by another id
//! is a `conflict`: reported, not imported, and the command exits 1 at the end.
//!
//! A document that cannot be read (bad JSON, a missing or mistyped field) stops the import
//! with `FILE: line N: problem` (`element N` for the array form) after committing what came
//! before it; fix it and run again (what is imported is skipped). With `--skip-invalid`,
//! such documents are counted, listed on stderr and skipped instead.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use kernelci_model::filter::{Column, Condition, Field, Op, Value as FilterValue};
use kernelci_model::node::DEFAULT_TIMEOUT_HOURS;
use kernelci_model::{
    Kind, Node, NodeFilter, NodeResult, ObjectId, State, Timestamp, User, UserGroup, time,
};
use kernelci_store::{NodeWrite, Page, Store, StoreError};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use super::Progress;

/// Nodes per transaction.
pub const BATCH: usize = 500;

/// `admin import-maestro`.
#[derive(Args, Debug)]
pub struct ImportMaestroArgs {
    /// Export files (`-` for stdin); the collection is told from the first document.
    pub files: Vec<PathBuf>,
    /// An export of the `node` collection.
    #[arg(long, value_name = "FILE")]
    pub nodes: Vec<PathBuf>,
    /// An export of the `user` collection.
    #[arg(long, value_name = "FILE")]
    pub users: Vec<PathBuf>,
    /// An export of the `usergroup` collection.
    #[arg(long, value_name = "FILE")]
    pub groups: Vec<PathBuf>,
    /// Skip (count and list) documents that cannot be read instead of stopping.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which collection an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Collection {
    /// `usergroup`.
    Groups,
    /// `user`.
    Users,
    /// `node`.
    Nodes,
}

impl Collection {
    fn name(self) -> &'static str {
        match self {
            Collection::Groups => "groups",
            Collection::Users => "users",
            Collection::Nodes => "nodes",
        }
    }

    /// Tell the collection from one document.
    pub fn detect(doc: &Value) -> Option<Collection> {
        let map = doc.as_object()?;
        if map.contains_key("hashed_password") || map.contains_key("email") {
            Some(Collection::Users)
        } else if map.contains_key("kind") || map.contains_key("path") {
            Some(Collection::Nodes)
        } else if map.contains_key("name")
            && map
                .keys()
                .all(|k| matches!(k.as_str(), "_id" | "id" | "name" | "revision_id"))
        {
            Some(Collection::Groups)
        } else {
            None
        }
    }
}

/// What happened to the documents of one collection.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Documents read.
    pub read: u64,
    /// New, written.
    pub inserted: u64,
    /// Nodes already there but different: replaced.
    pub updated: u64,
    /// Already there (nodes: identical; users, groups: same id): skipped.
    pub unchanged: u64,
    /// A unique name or e-mail taken by another id: not imported.
    pub conflicts: u64,
    /// Unreadable documents skipped (`--skip-invalid`).
    pub invalid: u64,
}

/// The counts of a whole import.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Groups.
    pub groups: Stats,
    /// Users.
    pub users: Stats,
    /// Nodes.
    pub nodes: Stats,
}

/// Where a document is in its file.
#[derive(Debug, Clone, Copy)]
pub enum Where {
    /// Line-delimited export: 1-based line.
    Line(u64),
    /// Array export: 1-based element.
    Element(u64),
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Where::Line(n) => write!(f, "line {n}"),
            Where::Element(n) => write!(f, "element {n}"),
        }
    }
}

/// The documents of one export file, in order.
pub struct DocReader {
    name: String,
    inner: Inner,
    peeked: Option<(Where, Result<Value, String>)>,
}

enum Inner {
    Lines {
        reader: Box<dyn BufRead + Send>,
        line: u64,
    },
    Array(std::iter::Enumerate<std::vec::IntoIter<Value>>),
    Failed(Option<String>),
}

impl DocReader {
    /// Open `path` (`-` for stdin).
    pub fn open(path: &PathBuf) -> Result<DocReader> {
        let name = path.display().to_string();
        let reader: Box<dyn Read + Send> = if name == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(path).with_context(|| format!("cannot open {name}"))?)
        };
        Self::from_reader(name, reader)
    }

    /// Read documents from `reader`, naming it `name` in messages.
    pub fn from_reader(name: String, reader: Box<dyn Read + Send>) -> Result<DocReader> {
        let mut reader: Box<dyn BufRead + Send> = Box::new(BufReader::new(reader));
        // The array form starts with `[` (after blanks).
        let array = loop {
            let buf = reader
                .fill_buf()
                .with_context(|| format!("cannot read {name}"))?;
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => break buf[i] == b'[',
                None if buf.is_empty() => break false,
                None => {
                    let n = buf.len();
                    reader.consume(n);
                }
            }
        };
        // The blanks consumed above held no newline count worth keeping for arrays; for the
        // line form, blank lines before the first document are only lost from the count
        // when they filled whole buffers (8 KiB of blanks), which exports never have.
        let inner = if array {
            let mut bytes = Vec::new();
            reader
                .read_to_end(&mut bytes)
                .with_context(|| format!("cannot read {name}"))?;
            match serde_json::from_slice::<Vec<Value>>(&bytes) {
                Ok(docs) => Inner::Array(docs.into_iter().enumerate()),
                Err(e) => Inner::Failed(Some(format!(
                    "not a JSON array of documents: line {} column {}: {e}",
                    e.line(),
                    e.column()
                ))),
            }
        } else {
            Inner::Lines { reader, line: 0 }
        };
        Ok(DocReader {
            name,
            inner,
            peeked: None,
        })
    }

    /// The file's name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first document, without consuming it.
    pub fn peek(&mut self) -> Option<&(Where, Result<Value, String>)> {
        if self.peeked.is_none() {
            self.peeked = self.read_next();
        }
        self.peeked.as_ref()
    }

    fn read_next(&mut self) -> Option<(Where, Result<Value, String>)> {
        match &mut self.inner {
            Inner::Failed(msg) => msg.take().map(|m| (Where::Line(1), Err(m))),
            Inner::Array(docs) => docs
                .next()
                .map(|(i, doc)| (Where::Element(i as u64 + 1), Ok(doc))),
            Inner::Lines { reader, line } => loop {
                let mut buf = Vec::new();
                *line += 1;
                let at = Where::Line(*line);
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) => return Some((at, Err(format!("cannot read: {e}")))),
                }
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let doc = serde_json::from_slice::<Value>(&buf).map_err(|e| {
                    // serde's position is within this one line.
                    let text = e.to_string();
                    let what = text.split(" at line ").next().unwrap_or(&text);
                    if e.line() > 1 {
                        format!("not JSON: {what} (at the end of the line)")
                    } else {
                        format!("not JSON: {what} at column {}", e.column())
                    }
                });
                return Some((at, doc));
            },
        }
    }
}

impl Iterator for DocReader {
    type Item = (Where, Result<Value, String>);

    fn next(&mut self) -> Option<Self::Item> {
        self.peeked.take().or_else(|| self.read_next())
    }
}

/// MongoDB Extended JSON (relaxed or canonical) to plain JSON: ObjectIds become their hex
/// text, dates naive-UTC ISO text (as the API shows them), numbers numbers.
pub fn plain(value: Value) -> Result<Value, String> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(plain)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            if map.len() == 1
                && let Some((key, inner)) = map.iter().next()
                && key.starts_with('$')
                && let Some(v) = wrapper(key, inner)?
            {
                return Ok(v);
            }
            map.into_iter()
                .map(|(k, v)| plain(v).map(|v| (k, v)))
                .collect::<Result<Map<_, _>, _>>()
                .map(Value::Object)
        }
        v => Ok(v),
    }
}

/// One Extended JSON wrapper (`None`: not one we convert).
fn wrapper(key: &str, inner: &Value) -> Result<Option<Value>, String> {
    let text = |what: &str| {
        inner
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{key}: expected a string {what}, found {inner}"))
    };
    Ok(Some(match key {
        "$oid" => Value::String(text("ObjectId")?),
        "$date" => Value::String(time::format(&date(inner)?)),
        "$numberLong" | "$numberInt" => {
            let s = text("integer")?;
            let n: i64 = s
                .parse()
                .map_err(|_| format!("{key}: {s:?} is not an integer"))?;
            Value::Number(n.into())
        }
        "$numberDouble" | "$numberDecimal" => {
            let s = text("number")?;
            if let Ok(n) = s.parse::<i64>() {
                Value::Number(n.into())
            } else {
                let f: f64 = s
                    .parse()
                    .map_err(|_| format!("{key}: {s:?} is not a number"))?;
                Value::Number(
                    Number::from_f64(f)
                        .ok_or_else(|| format!("{key}: {s:?} has no JSON representation"))?,
                )
            }
        }
        _ => return Ok(None),
    }))
}

/// A `$date` payload: ISO text, milliseconds, or `{"$numberLong": milliseconds}`.
fn date(inner: &Value) -> Result<Timestamp, String> {
    let millis = match inner {
        Value::String(s) => return time::parse_iso(s).map_err(|e| format!("$date: {e}")),
        Value::Number(n) => n.as_i64(),
        Value::Object(m) if m.len() == 1 => m
            .get("$numberLong")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<i64>().ok()),
        _ => None,
    };
    let millis = millis.ok_or_else(|| format!("$date: cannot read {inner}"))?;
    let micros = millis
        .checked_mul(1000)
        .ok_or_else(|| format!("$date: {millis} is out of range"))?;
    Ok(time::from_micros(micros))
}

/// Field readers over a plain document; each problem names the field.
struct Doc<'a>(&'a Map<String, Value>);

impl Doc<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn id(&self) -> Result<ObjectId, String> {
        match self.0.get("_id").or_else(|| self.0.get("id")) {
            Some(Value::String(s)) => ObjectId::parse(s).map_err(|e| format!("_id: {e}")),
            Some(v) => Err(format!("_id: expected an ObjectId, found {v}")),
            None => Err("_id: missing".into()),
        }
    }

    fn string(&self, key: &str) -> Result<String, String> {
        self.opt_string(key)?
            .ok_or_else(|| format!("{key}: missing"))
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(format!("{key}: expected a string, found {v}")),
        }
    }

    fn opt_id(&self, key: &str) -> Result<Option<ObjectId>, String> {
        self.opt_string(key)?
            .map(|s| ObjectId::parse(&s).map_err(|e| format!("{key}: {e}")))
            .transpose()
    }

    fn strings(&self, key: &str) -> Result<Option<Vec<String>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("{key}: expected strings, found {v}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(format!("{key}: expected a list, found {v}")),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(format!("{key}: expected true or false, found {v}")),
        }
    }

    fn time(&self, key: &str) -> Result<Option<Timestamp>, String> {
        self.opt_string(key)?
            .map(|s| time::parse_iso(&s).map_err(|e| format!("{key}: {e}")))
            .transpose()
    }

    /// An object field with upstream's default `{}` when absent; `null` stays `None`.
    fn object_or_empty(&self, key: &str) -> Result<Option<Value>, String> {
        match self.0.get(key) {
            None => Ok(Some(Value::Object(Map::new()))),
            Some(Value::Null) => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
            Some(v) => Err(format!("{key}: expected an object, found {v}")),
        }
    }
}

/// A node from a plain (see [`plain`]) `node` document. Absent keys of older documents get
/// upstream's defaults.
pub fn node_from_doc(doc: &Value) -> Result<Node, String> {
    let map = doc.as_object().ok_or("not a JSON object")?;
    let d = Doc(map);
    let kind_text = d.string("kind")?;
    let kind = Kind::parse(&kind_text).ok_or_else(|| format!("kind: unknown {kind_text:?}"))?;
    let state = match d.opt_string("state")? {
        None => State::Running,
        Some(s) => State::parse(&s).ok_or_else(|| format!("state: unknown {s:?}"))?,
    };
    let result = d
        .opt_string("result")?
        .map(|s| NodeResult::parse(&s).ok_or_else(|| format!("result: unknown {s:?}")))
        .transpose()?;
    let artifacts = match map.get("artifacts") {
        None => Some(BTreeMap::new()),
        Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(
            m.iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    v => Err(format!("artifacts.{k}: expected a URL, found {v}")),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?,
        ),
        Some(v) => return Err(format!("artifacts: expected an object, found {v}")),
    };
    let platform_filter = match map.get("platform_filter") {
        None => Some(Vec::new()),
        _ => d.strings("platform_filter")?,
    };
    let created = d.time("created")?.ok_or("created: missing")?;
    let retry_counter = match d.get("retry_counter") {
        None => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| format!("retry_counter: expected an integer, found {v}"))?,
    };
    Ok(Node {
        id: d.id()?,
        kind,
        name: d.string("name")?,
        path: d.strings("path")?.ok_or("path: missing")?,
        group: d.opt_string("group")?,
        parent: d.opt_id("parent")?,
        state,
        result,
        artifacts,
        data: d.object_or_empty("data")?,
        debug: d.object_or_empty("debug")?,
        jobfilter: d.strings("jobfilter")?,
        platform_filter,
        created,
        updated: d.time("updated")?.unwrap_or(created),
        timeout: d.time("timeout")?.unwrap_or_else(|| {
            time::from_micros(time::to_micros(&created) + DEFAULT_TIMEOUT_HOURS * 3_600_000_000)
        }),
        holdoff: d.time("holdoff")?,
        owner: d.opt_string("owner")?,
        submitter: d.opt_string("submitter")?,
        treeid: d.opt_string("treeid")?,
        user_groups: d.strings("user_groups")?.unwrap_or_default(),
        processed_by_kcidb_bridge: d.bool("processed_by_kcidb_bridge", false)?,
        retry_counter,
    })
}

/// A group from a plain `usergroup` document.
pub fn group_from_doc(doc: &Value) -> Result<UserGroup, String> {
    let map = doc.as_object().ok_or("not a JSON object")?;
    let d = Doc(map);
    Ok(UserGroup {
        id: d.id()?,
        name: d.string("name")?,
    })
}

/// A user from a plain `user` document. `groups` entries may be embedded group documents
/// (`{_id, name}`), ids or DBRefs (`{"$ref": "usergroup", "$id": ...}`); ids are looked
/// up in `known`.
pub fn user_from_doc(doc: &Value, known: &HashMap<ObjectId, UserGroup>) -> Result<User, String> {
    let map = doc.as_object().ok_or("not a JSON object")?;
    let d = Doc(map);
    let mut groups = Vec::new();
    for g in d
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let by_id = |id: &str| {
            let id = ObjectId::parse(id).map_err(|e| format!("groups: {e}"))?;
            known.get(&id).cloned().ok_or_else(|| {
                format!("groups: unknown group id {id} (import the usergroup collection first)")
            })
        };
        let group = match g {
            Value::String(id) => by_id(id)?,
            Value::Object(m) if m.contains_key("name") => group_from_doc(g)?,
            Value::Object(m) => match m.get("$id").or_else(|| m.get("id")) {
                Some(Value::String(id)) => by_id(id)?,
                _ => return Err(format!("groups: cannot read {g}")),
            },
            _ => return Err(format!("groups: cannot read {g}")),
        };
        groups.push(group);
    }
    if let Some(v) = d.get("groups")
        && !v.is_array()
    {
        return Err(format!("groups: expected a list, found {v}"));
    }
    Ok(User {
        id: d.id()?,
        email: d.string("email")?,
        hashed_password: d.string("hashed_password")?,
        is_active: d.bool("is_active", true)?,
        is_superuser: d.bool("is_superuser", false)?,
        is_verified: d.bool("is_verified", false)?,
        username: d.string("username")?,
        groups,
    })
}

/// Run `admin import-maestro`.
pub async fn run(store: &dyn Store, args: ImportMaestroArgs) -> Result<()> {
    let mut sources: Vec<(Collection, DocReader)> = Vec::new();
    for (collection, paths) in [
        (Collection::Groups, &args.groups),
        (Collection::Users, &args.users),
        (Collection::Nodes, &args.nodes),
    ] {
        for p in paths {
            sources.push((collection, DocReader::open(p)?));
        }
    }
    for p in &args.files {
        let mut reader = DocReader::open(p)?;
        let name = reader.name().to_string();
        let collection = match reader.peek() {
            None => continue,
            Some((_, Ok(doc))) => plain(doc.clone())
                .ok()
                .as_ref()
                .and_then(Collection::detect),
            Some((at, Err(e))) => bail!("{name}: {at}: {e}"),
        };
        let Some(collection) = collection else {
            bail!(
                "{}: cannot tell which collection this is (use --nodes, --users or --groups)",
                reader.name()
            );
        };
        sources.push((collection, reader));
    }
    if sources.is_empty() {
        bail!("nothing to import: give export files (or --nodes, --users, --groups)");
    }
    // Groups before the users that name them.
    sources.sort_by_key(|(c, _)| *c);
    let mut summary = Summary::default();
    let mut known: HashMap<ObjectId, UserGroup> = store
        .list_groups()
        .await?
        .into_iter()
        .map(|g| (g.id, g))
        .collect();
    let mut problems = Vec::new();
    for (collection, reader) in sources {
        let mut importer = Importer {
            store,
            name: reader.name().to_string(),
            skip_invalid: args.skip_invalid,
            stats: Stats::default(),
            problems: &mut problems,
            progress: Progress::new(collection.name()),
        };
        let result = match collection {
            Collection::Groups => importer.groups(reader, &mut known).await,
            Collection::Users => importer.users(reader, &known).await,
            Collection::Nodes => importer.nodes(reader).await,
        };
        importer.progress.finish();
        let stats = importer.stats;
        let total = match collection {
            Collection::Groups => &mut summary.groups,
            Collection::Users => &mut summary.users,
            Collection::Nodes => &mut summary.nodes,
        };
        add(total, &stats);
        result?;
    }
    for p in &problems {
        eprintln!("{p}");
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        for (name, s) in [
            ("groups", &summary.groups),
            ("users", &summary.users),
            ("nodes", &summary.nodes),
        ] {
            println!(
                "{name}: {} read, {} inserted, {} updated, {} unchanged, {} conflicts, {} invalid",
                s.read, s.inserted, s.updated, s.unchanged, s.conflicts, s.invalid
            );
        }
    }
    let conflicts = summary.groups.conflicts + summary.users.conflicts;
    if conflicts > 0 {
        bail!("{conflicts} documents were not imported (conflicts listed above)");
    }
    Ok(())
}

fn add(total: &mut Stats, s: &Stats) {
    total.read += s.read;
    total.inserted += s.inserted;
    total.updated += s.updated;
    total.unchanged += s.unchanged;
    total.conflicts += s.conflicts;
    total.invalid += s.invalid;
}

struct Importer<'a> {
    store: &'a dyn Store,
    name: String,
    skip_invalid: bool,
    stats: Stats,
    problems: &'a mut Vec<String>,
    progress: Progress,
}

impl Importer<'_> {
    /// The next readable document converted by `convert`; `Ok(None)` at the end. An
    /// unreadable one is an error, or skipped and listed with `--skip-invalid`.
    fn next<T>(
        &mut self,
        reader: &mut DocReader,
        convert: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<Option<(Where, T)>> {
        for (at, doc) in reader.by_ref() {
            self.stats.read += 1;
            match doc.and_then(plain).and_then(|d| convert(&d)) {
                Ok(v) => return Ok(Some((at, v))),
                Err(e) => {
                    let msg = format!("{}: {at}: {e}", self.name);
                    if !self.skip_invalid {
                        bail!(msg);
                    }
                    self.stats.invalid += 1;
                    self.problems.push(format!("skipped: {msg}"));
                }
            }
        }
        Ok(None)
    }

    async fn groups(
        &mut self,
        mut reader: DocReader,
        known: &mut HashMap<ObjectId, UserGroup>,
    ) -> Result<()> {
        while let Some((at, group)) = self.next(&mut reader, group_from_doc)? {
            match self.store.get_group(&group.id).await? {
                Some(g) if g.name == group.name => self.stats.unchanged += 1,
                Some(g) => self.conflict(
                    at,
                    format!(
                        "group {} is stored as {:?}, the export names it {:?}",
                        group.id, g.name, group.name
                    ),
                ),
                None => match self.store.insert_group(&group).await {
                    Ok(()) => self.stats.inserted += 1,
                    Err(StoreError::Conflict(_)) => self.conflict(
                        at,
                        format!("group name {:?} belongs to another id", group.name),
                    ),
                    Err(e) => return Err(e.into()),
                },
            }
            known.insert(group.id, group);
            self.progress.add(1);
        }
        Ok(())
    }

    async fn users(
        &mut self,
        mut reader: DocReader,
        known: &HashMap<ObjectId, UserGroup>,
    ) -> Result<()> {
        while let Some((at, user)) = self.next(&mut reader, |d| user_from_doc(d, known))? {
            // A user already here is left alone: logging in rehashes bcrypt passwords to
            // argon2id, and a password changed here must not be reverted.
            let result = match self.store.get_user(&user.id).await? {
                Some(_) => {
                    self.stats.unchanged += 1;
                    Ok(())
                }
                None => self
                    .store
                    .insert_user(&user)
                    .await
                    .map(|()| self.stats.inserted += 1),
            };
            match result {
                Ok(()) => {}
                Err(StoreError::Conflict(field)) => self.conflict(
                    at,
                    format!(
                        "user {} ({}): the {field} is taken by another user",
                        user.id, user.username
                    ),
                ),
                Err(e) => return Err(e.into()),
            }
            self.progress.add(1);
        }
        Ok(())
    }

    async fn nodes(&mut self, mut reader: DocReader) -> Result<()> {
        let mut batch: Vec<Node> = Vec::with_capacity(BATCH);
        loop {
            let next = match self.next(&mut reader, node_from_doc) {
                Ok(n) => n,
                Err(e) => {
                    // Keep what came before the bad document.
                    self.write_nodes(std::mem::take(&mut batch)).await?;
                    return Err(e);
                }
            };
            let Some((_, node)) = next else { break };
            batch.push(node);
            if batch.len() >= BATCH {
                self.write_nodes(std::mem::take(&mut batch)).await?;
            }
        }
        self.write_nodes(batch).await
    }

    /// One transaction: new nodes inserted, changed ones replaced, no events.
    async fn write_nodes(&mut self, batch: Vec<Node>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // The last copy of an id wins (an export has each once; concatenated ones may not).
        let mut by_id: HashMap<ObjectId, Node> = HashMap::with_capacity(batch.len());
        let mut order = Vec::with_capacity(batch.len());
        for node in batch {
            if by_id.insert(node.id, node.clone()).is_none() {
                order.push(node.id);
            } else {
                self.stats.unchanged += 1;
            }
        }
        let filter = NodeFilter {
            conditions: vec![Condition {
                field: Field::Column(Column::Id),
                op: Op::In,
                value: FilterValue::List(
                    order
                        .iter()
                        .map(|id| FilterValue::Str(id.to_string()))
                        .collect(),
                ),
            }],
        };
        let stored: HashMap<ObjectId, Node> = self
            .store
            .find_nodes(&filter, Page::default())
            .await?
            .into_iter()
            .map(|n| (n.id, n))
            .collect();
        let mut writes = Vec::new();
        let (mut inserted, mut updated) = (0, 0);
        for id in &order {
            let Some(node) = by_id.remove(id) else {
                continue;
            };
            match stored.get(id) {
                None => {
                    inserted += 1;
                    writes.push(NodeWrite::Insert(node));
                }
                Some(old) if *old == node => self.stats.unchanged += 1,
                Some(_) => {
                    updated += 1;
                    writes.push(NodeWrite::Replace(node));
                }
            }
        }
        if !writes.is_empty() {
            self.store
                .write_nodes(&writes, None)
                .await
                .with_context(|| format!("{}: writing nodes", self.name))?;
        }
        self.stats.inserted += inserted;
        self.stats.updated += updated;
        self.progress.add(order.len() as u64);
        Ok(())
    }

    fn conflict(&mut self, at: Where, msg: String) {
        self.stats.conflicts += 1;
        self.problems
            .push(format!("conflict: {}: {at}: {msg}", self.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extended_json_becomes_plain() {
        let doc = json!({
            "_id": {"$oid": "65bb6bf4e9d9d2b0a1c2d3e4"},
            "created": {"$date": "2024-02-01T09:58:28.479Z"},
            "updated": {"$date": {"$numberLong": "1706781508479"}},
            "n": {"$numberLong": "12"}, "i": {"$numberInt": "3"},
            "f": {"$numberDouble": "1.5"},
            "keep": {"$regularExpression": {"pattern": "a", "options": ""}},
        });
        let p = plain(doc).unwrap();
        assert_eq!(p["_id"], "65bb6bf4e9d9d2b0a1c2d3e4");
        assert_eq!(p["created"], "2024-02-01T09:58:28.479000");
        assert_eq!(p["updated"], "2024-02-01T09:58:28.479000");
        assert_eq!(p["n"], 12);
        assert_eq!(p["i"], 3);
        assert_eq!(p["f"], 1.5);
        assert!(p["keep"]["$regularExpression"].is_object());
        assert!(plain(json!({"$numberLong": "x"})).is_err());
    }

    #[test]
    fn legacy_node_gets_defaults() {
        let doc = json!({"_id": "65bb6bf4e9d9d2b0a1c2d3e4", "kind": "checkout", "name": "c",
                         "path": ["c"], "created": "2024-02-01T09:58:28", "artifacts": null});
        let n = node_from_doc(&doc).unwrap();
        assert_eq!(n.artifacts, None);
        assert_eq!(n.data, Some(json!({})));
        assert_eq!(n.platform_filter, Some(vec![]));
        assert_eq!(n.updated, n.created);
        assert_eq!(n.state, State::Running);
        let bad = json!({"_id": "65bb6bf4e9d9d2b0a1c2d3e4", "kind": "node", "name": "c",
                         "path": ["c"], "created": "2024-02-01"});
        assert!(node_from_doc(&bad).unwrap_err().contains("kind"));
    }

    #[test]
    fn collections_are_detected() {
        assert_eq!(
            Collection::detect(&json!({"_id": "x", "name": "g"})),
            Some(Collection::Groups)
        );
        assert_eq!(
            Collection::detect(&json!({"_id": "x", "email": "a@b", "hashed_password": "h"})),
            Some(Collection::Users)
        );
        assert_eq!(
            Collection::detect(&json!({"_id": "x", "kind": "test", "name": "t"})),
            Some(Collection::Nodes)
        );
        assert_eq!(Collection::detect(&json!({"x": 1})), None);
    }
}
