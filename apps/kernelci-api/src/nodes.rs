//! Node endpoints: create, read, query, count, replace, patch, result hierarchies and the
//! KCIDB bridge's batch flag update.

use axum::Json;
use axum::extract::{Path, State};
use kernelci_model::event::{NODE_CHANNEL, NodeOp, Previous, node_event_data};
use kernelci_model::{CloudEvent, Node, NodeFilter, NodeInput, ObjectId, User, node, time};
use kernelci_store::{EventDraft, NodeWrite, Page};
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{CurrentUser, JsonBody, QueryPairs};
use crate::paging::PageModel;

fn parse_id(raw: &str) -> ApiResult<ObjectId> {
    ObjectId::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn node_json(node: &Node) -> ApiResult<Value> {
    serde_json::to_value(node).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The CloudEvent for a node change (owner attribute = node owner, as upstream).
pub(crate) fn node_event(
    state: &AppState,
    node: &Node,
    op: NodeOp,
    is_hierarchy: bool,
    previous: Option<Previous>,
) -> EventDraft {
    let mut attributes = serde_json::Map::new();
    attributes.insert("owner".into(), node.owner.clone().into());
    EventDraft {
        channel: NODE_CHANNEL.into(),
        owner: node.owner.clone(),
        cloud_event: CloudEvent {
            id: kernelci_model::id::uuid4(),
            source: state.config.event_source.clone(),
            event_type: kernelci_model::event::DEFAULT_EVENT_TYPE.into(),
            time: time::now(),
            data: node_event_data(node, op, is_hierarchy, previous),
            attributes,
            sequence_id: None,
        },
    }
}

fn filter_from(query: &QueryPairs, skip: &[&str]) -> ApiResult<NodeFilter> {
    NodeFilter::parse(query.without(skip)).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn check_groups_exist(state: &AppState, names: &[String]) -> ApiResult<()> {
    for name in names {
        if state.store.get_group_by_name(name).await?.is_none() {
            return Err(ApiError::bad_request(format!(
                "User group does not exist with name: {name}"
            )));
        }
    }
    Ok(())
}

async fn stored_node_for_edit(state: &AppState, raw_id: &str, user: &User) -> ApiResult<Node> {
    let id = parse_id(raw_id)?;
    let node = state
        .store
        .get_node(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Node not found with id: {id}")))?;
    if !user.can_edit_node(&node) {
        return Err(ApiError::Detail(
            axum::http::StatusCode::UNAUTHORIZED,
            "Unauthorized to complete the operation".into(),
        ));
    }
    Ok(node)
}

/// `GET /node/{id}`: the node, or `null` when there is none.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    match state.store.get_node(&id).await? {
        Some(n) => Ok(Json(node_json(&n)?)),
        None => Ok(Json(Value::Null)),
    }
}

/// `GET /nodes`: a page `{items, total, limit, offset}`, oldest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<PageModel<Value>>> {
    let (limit, offset) = crate::paging::params(&query)?;
    let filter = filter_from(&query, &["limit", "offset"])?;
    let page = Page {
        limit: Some(limit),
        offset,
    };
    let (items, total) = tokio::try_join!(
        state.store.find_nodes(&filter, page),
        state.store.count_nodes(&filter)
    )?;
    let items: Vec<Value> = items.iter().map(node_json).collect::<ApiResult<_>>()?;
    Ok(Json(PageModel {
        items,
        total,
        limit,
        offset,
    }))
}

/// `GET /nodes/fast`: a bare array; unbounded without `limit`; 504 after the configured time.
pub(crate) async fn list_fast(
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<Value>> {
    let limit = query.int("limit", 1)?;
    let offset = query.int("offset", 0)?.unwrap_or(0);
    let filter = filter_from(&query, &["limit", "offset"])?;
    let find = state.store.find_nodes(&filter, Page { limit, offset });
    let nodes = tokio::time::timeout(state.config.fast_query_timeout, find)
        .await
        .map_err(|_| {
            ApiError::Detail(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                "Timeout while fetching nodes: ".into(),
            )
        })??;
    Ok(Json(Value::Array(
        nodes.iter().map(node_json).collect::<ApiResult<_>>()?,
    )))
}

/// `GET /count`: a bare integer. `limit`/`offset` are ignored (upstream turns them into
/// filters that match nothing).
pub(crate) async fn count(
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<i64>> {
    let filter = filter_from(&query, &["limit", "offset"])?;
    Ok(Json(state.store.count_nodes(&filter).await?))
}

/// `POST /node`: validate, check parent and groups, store with a `created` event.
pub(crate) async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let now = time::now();
    let node = NodeInput::from_json(&body, now)?.into_new_node(&user.username, now)?;
    if let Some(parent) = node.parent
        && state.store.get_node(&parent).await?.is_none()
    {
        return Err(ApiError::not_found(format!(
            "Parent not found with id: {parent}"
        )));
    }
    check_groups_exist(&state, &node.user_groups).await?;
    let event = node_event(&state, &node, NodeOp::Created, false, None);
    state
        .store
        .insert_node(&node, Some(&event))
        .await
        .map_err(schedule_key_conflict)?;
    Ok(Json(node_json(&node)?))
}

/// `data.schedule_key` (our extension, set by the pipeline scheduler) is unique among
/// nodes: a second node with the same key is refused with 409 instead of duplicating a job.
fn schedule_key_conflict(e: kernelci_store::StoreError) -> ApiError {
    match e {
        kernelci_store::StoreError::Conflict(field) if field == "schedule_key" => ApiError::Detail(
            axum::http::StatusCode::CONFLICT,
            "A node with this data.schedule_key already exists".into(),
        ),
        e => e.into(),
    }
}

async fn save_update(
    state: &AppState,
    stored: &Node,
    node: &Node,
    query: &QueryPairs,
) -> ApiResult<Json<Value>> {
    let noevent = query.bool("noevent")?.unwrap_or(false);
    let previous = Previous {
        state: stored.state,
        result: stored.result,
    };
    let event = (!noevent).then(|| node_event(state, node, NodeOp::Updated, false, Some(previous)));
    state
        .store
        .update_node(node, event.as_ref())
        .await
        .map_err(|e| match e {
            kernelci_store::StoreError::NotFound => {
                ApiError::not_found(format!("Node not found with id: {}", node.id))
            }
            e => schedule_key_conflict(e),
        })?;
    // The stored document is this node serialized: answer with it instead of reading it back.
    Ok(Json(node_json(node)?))
}

/// `PUT /node/{id}`: replace with upstream's rules (see [`NodeInput::apply_put`]).
pub(crate) async fn replace(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    query: QueryPairs,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let stored = stored_node_for_edit(&state, &id, &user).await?;
    let now = time::now();
    let node = NodeInput::from_json(&body, now)?.apply_put(&stored, now)?;
    save_update(&state, &stored, &node, &query).await
}

/// `PATCH /node/{id}`: apply the keys present (see [`node::apply_patch`]).
pub(crate) async fn patch(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    query: QueryPairs,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let stored = stored_node_for_edit(&state, &id, &user).await?;
    let node = node::apply_patch(&stored, &body, time::now())?;
    save_update(&state, &stored, &node, &query).await
}

/// A hierarchy level flattened for writing.
struct Flattened {
    writes: Vec<NodeWrite>,
    nodes: Vec<Node>,
}

fn hierarchy_parts(v: &Value, loc: &str) -> ApiResult<(Value, Vec<Value>)> {
    let obj = v.as_object().ok_or_else(|| {
        ApiError::invalid_field(
            &["body", loc],
            "dict_type",
            "Input should be a valid dictionary",
            v.clone(),
        )
    })?;
    let node = obj.get("node").cloned().ok_or_else(|| {
        ApiError::invalid_field(
            &["body", loc, "node"],
            "missing",
            "Field required",
            v.clone(),
        )
    })?;
    let children = match obj.get("child_nodes") {
        Some(Value::Array(items)) => items.clone(),
        Some(other) => {
            return Err(ApiError::invalid_field(
                &["body", loc, "child_nodes"],
                "list_type",
                "Input should be a valid list",
                other.clone(),
            ));
        }
        None => {
            return Err(ApiError::invalid_field(
                &["body", loc, "child_nodes"],
                "missing",
                "Field required",
                v.clone(),
            ));
        }
    };
    Ok((node, children))
}

/// Walk a hierarchy depth-first (pre-order), turning each level into a node write.
fn flatten(
    level: &Value,
    parent: Option<ObjectId>,
    root: &Node,
    user: &User,
    out: &mut Flattened,
    depth: usize,
) -> ApiResult<()> {
    if depth > 64 {
        return Err(ApiError::bad_request(
            "Hierarchy is too deep (more than 64 levels)",
        ));
    }
    let (node_body, children) =
        hierarchy_parts(level, if depth == 0 { "node" } else { "child_nodes" })?;
    let now = time::now();
    let input = NodeInput::from_json(&node_body, now)?;
    let kind = input.require_kind()?;
    let existing_id = match (depth, &input.id_in_body) {
        (0, _) => Some(root.id),
        (_, Some(raw)) => Some(parse_id(raw)?),
        _ => None,
    };
    let owner = Some(input.owner.clone().unwrap_or_else(|| user.username.clone()));
    let parent_id = if depth == 0 {
        input.parent.or(root.parent)
    } else {
        parent.or(input.parent)
    };
    let user_groups = input.user_groups.clone();
    let id = existing_id.unwrap_or_else(ObjectId::generate);
    let mut node = input.into_node(kind, id, owner, root.submitter.clone(), user_groups, now);
    node.parent = parent_id;
    node.treeid = root.treeid.clone();
    kernelci_model::data::validate_node_data(&node)?;
    out.nodes.push(node.clone());
    out.writes.push(if existing_id.is_some() {
        NodeWrite::Replace(node)
    } else {
        NodeWrite::Insert(node)
    });
    for child in &children {
        flatten(child, Some(id), root, user, out, depth + 1)?;
    }
    Ok(())
}

/// `PUT /nodes/{id}`: write a result hierarchy in one transaction, one `updated` event for
/// the root with `is_hierarchy: true`; returns every written node, root first.
pub(crate) async fn put_hierarchy(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let root = stored_node_for_edit(&state, &id, &user).await?;
    let mut flat = Flattened {
        writes: Vec::new(),
        nodes: Vec::new(),
    };
    flatten(&body, None, &root, &user, &mut flat, 0)?;
    let previous = Previous {
        state: root.state,
        result: root.result,
    };
    let event = node_event(
        &state,
        &flat.nodes[0],
        NodeOp::Updated,
        true,
        Some(previous),
    );
    state
        .store
        .write_nodes(&flat.writes, Some(&event))
        .await
        .map_err(|e| match e {
            kernelci_store::StoreError::NotFound => {
                ApiError::not_found("Node not found with id given in the hierarchy")
            }
            kernelci_store::StoreError::Conflict(_) => {
                ApiError::bad_request("A node id in the hierarchy is used twice")
            }
            e => e.into(),
        })?;
    Ok(Json(Value::Array(
        flat.nodes.iter().map(node_json).collect::<ApiResult<_>>()?,
    )))
}

/// `PUT /batch/nodeset`: set `processed_by_kcidb_bridge` on many nodes (no events); nodes the
/// caller may not edit are skipped; returns how many were updated.
pub(crate) async fn batch_nodeset(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<i64>> {
    let field_err = |k: &str, kind: &str, msg: &str| {
        ApiError::invalid_field(&["body", k], kind, msg, body.clone())
    };
    let ids = match body.get("nodes") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    field_err("nodes", "string_type", "Input should be a valid string")
                })
            })
            .collect::<ApiResult<Vec<String>>>()?,
        Some(_) => {
            return Err(field_err(
                "nodes",
                "list_type",
                "Input should be a valid list",
            ));
        }
        None => return Err(field_err("nodes", "missing", "Field required")),
    };
    let field = body
        .get("field")
        .and_then(Value::as_str)
        .ok_or_else(|| field_err("field", "missing", "Field required"))?;
    let value = body
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| field_err("value", "missing", "Field required"))?;
    if field != "processed_by_kcidb_bridge" {
        return Err(ApiError::bad_request("Field not supported"));
    }
    let flag = match value {
        "true" | "True" => true,
        "false" | "False" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid value for processed_by_kcidb_bridge: '{other}', use 'true' or 'false'"
            )));
        }
    };
    let mut updated = 0;
    for raw in ids {
        let id = parse_id(&raw)?;
        let Some(mut node) = state.store.get_node(&id).await? else {
            return Err(ApiError::not_found(format!("Node not found with id: {id}")));
        };
        if !user.can_edit_node(&node) {
            continue;
        }
        node.processed_by_kcidb_bridge = flag;
        node.updated = time::now();
        state.store.update_node(&node, None).await?;
        updated += 1;
    }
    Ok(Json(updated))
}
