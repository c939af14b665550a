//! Plain data passed to and from a [`crate::Store`].

use kernelci_model::filter::{Op, Value};
use kernelci_model::telemetry::TelemetryKind;
use kernelci_model::{CloudEvent, Node, Timestamp};
use serde_json::{Map, Value as Json};

/// Paging for list queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Page {
    /// At most this many (None = all).
    pub limit: Option<i64>,
    /// Skip this many.
    pub offset: i64,
}

/// A node to write as part of a hierarchy.
#[derive(Debug, Clone)]
pub enum NodeWrite {
    /// A new node.
    Insert(Node),
    /// Replace the node with this id.
    Replace(Node),
}

/// An event to store (the sequence id is assigned by the store).
#[derive(Debug, Clone)]
pub struct EventDraft {
    /// Channel (`node` for node events).
    pub channel: String,
    /// The owner attribute (node owner or publisher); used by the owner filter.
    pub owner: Option<String>,
    /// The CloudEvent, without sequence id.
    pub cloud_event: CloudEvent,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Sequence id (strictly increasing in commit order).
    pub seq: i64,
    /// Event id (24 hex).
    pub id: String,
    /// When it was stored.
    pub timestamp: Timestamp,
    /// Channel.
    pub channel: String,
    /// Owner attribute.
    pub owner: Option<String>,
    /// The CloudEvent payload (`data`).
    pub data: Json,
    /// The full CloudEvent envelope as a JSON object, without `_sequence_id`.
    pub envelope: Map<String, Json>,
}

/// A field of the event history that `GET /events` can filter on.
#[derive(Debug, Clone, PartialEq)]
pub enum EventField {
    /// The event id.
    Id,
    /// The channel.
    Channel,
    /// The owner attribute.
    Owner,
    /// The store time.
    Timestamp,
    /// The sequence id.
    Seq,
    /// A path inside `data` (`["kind"]`, `["data", "arch"]`...).
    Data(Vec<String>),
    /// A top-level field that does not exist (matches only `null`).
    Missing,
}

/// One condition of an event query.
#[derive(Debug, Clone, PartialEq)]
pub struct EventCondition {
    /// Field.
    pub field: EventField,
    /// Comparison.
    pub op: Op,
    /// Value (timestamps as [`Value::Time`], ids as strings).
    pub value: Value,
}

/// `GET /events`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// All must hold.
    pub conditions: Vec<EventCondition>,
    /// Paging (oldest first).
    pub page: Page,
}

/// `POST /subscribe/{channel}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeRequest {
    /// Channel.
    pub channel: String,
    /// Username of the subscriber.
    pub username: String,
    /// Receive every event, not only those without owner or owned by the user.
    pub promiscuous: bool,
    /// Durable subscriber name (`scheduler:node`).
    pub subscriber_id: Option<String>,
    /// Now.
    pub now: Timestamp,
}

/// A subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Id (unique across processes).
    pub id: i64,
    /// Channel.
    pub channel: String,
    /// Owner username.
    pub username: String,
    /// Promiscuous mode.
    pub promiscuous: bool,
    /// Durable subscriber id.
    pub subscriber_id: Option<String>,
    /// Everything up to this sequence id has been delivered and acknowledged.
    pub cursor: i64,
    /// A delivered event awaiting its implicit ack (durable subscriptions).
    pub pending: Option<i64>,
    /// Creation time.
    pub created: Timestamp,
    /// Last `/listen`.
    pub last_poll: Option<Timestamp>,
}

/// A text column of the telemetry table that queries can match exactly. The column names
/// come from this fixed list only, never from input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelemetryColumn {
    /// `id`.
    Id,
    /// `kind`.
    Kind,
    /// `runtime`.
    Runtime,
    /// `device_type`.
    DeviceType,
    /// `device_id`.
    DeviceId,
    /// `job_name`.
    JobName,
    /// `test_name`.
    TestName,
    /// `job_id`.
    JobId,
    /// `node_id`.
    NodeId,
    /// `tree`.
    Tree,
    /// `branch`.
    Branch,
    /// `arch`.
    Arch,
    /// `result`.
    Result,
    /// `error_type`.
    ErrorType,
    /// `error_msg`.
    ErrorMsg,
}

impl TelemetryColumn {
    /// Every text column.
    pub const ALL: [TelemetryColumn; 15] = [
        TelemetryColumn::Id,
        TelemetryColumn::Kind,
        TelemetryColumn::Runtime,
        TelemetryColumn::DeviceType,
        TelemetryColumn::DeviceId,
        TelemetryColumn::JobName,
        TelemetryColumn::TestName,
        TelemetryColumn::JobId,
        TelemetryColumn::NodeId,
        TelemetryColumn::Tree,
        TelemetryColumn::Branch,
        TelemetryColumn::Arch,
        TelemetryColumn::Result,
        TelemetryColumn::ErrorType,
        TelemetryColumn::ErrorMsg,
    ];

    /// The column (and event field) name.
    pub fn name(self) -> &'static str {
        match self {
            TelemetryColumn::Id => "id",
            TelemetryColumn::Kind => "kind",
            TelemetryColumn::Runtime => "runtime",
            TelemetryColumn::DeviceType => "device_type",
            TelemetryColumn::DeviceId => "device_id",
            TelemetryColumn::JobName => "job_name",
            TelemetryColumn::TestName => "test_name",
            TelemetryColumn::JobId => "job_id",
            TelemetryColumn::NodeId => "node_id",
            TelemetryColumn::Tree => "tree",
            TelemetryColumn::Branch => "branch",
            TelemetryColumn::Arch => "arch",
            TelemetryColumn::Result => "result",
            TelemetryColumn::ErrorType => "error_type",
            TelemetryColumn::ErrorMsg => "error_msg",
        }
    }

    /// The column for an event field name, if it is a text column.
    pub fn from_field(name: &str) -> Option<TelemetryColumn> {
        TelemetryColumn::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Which telemetry events a query selects; every condition set must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryFilter {
    /// Exact matches on text columns.
    pub equals: Vec<(TelemetryColumn, String)>,
    /// `kind` is one of these (empty: any kind).
    pub kinds: Vec<TelemetryKind>,
    /// Exact `retry`.
    pub retry: Option<i64>,
    /// Exact `is_infra_error`.
    pub is_infra_error: Option<bool>,
    /// `ts >= since`.
    pub since: Option<Timestamp>,
    /// `ts <= until`.
    pub until: Option<Timestamp>,
}

/// `GET /telemetry`: a filter and a page (oldest first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryQuery {
    /// Which events.
    pub filter: TelemetryFilter,
    /// Which page.
    pub page: Page,
}
