//! AdmissionReview parsing and answering. The webhook always allows: this module only reads.

use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;

use crate::ids::{Gvr, Operation};

/// Largest AdmissionReview body accepted, in bytes (the apiserver's own request limit is 3 MiB).
pub const REVIEW_BYTES_MAX: usize = 3 * 1024 * 1024;

/// The parts of an admission request the pipeline uses.
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionRequest {
    /// The request's uid, echoed in the response.
    pub uid: String,
    /// The resource, as matched by the webhook's rules.
    pub gvr: Gvr,
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// CREATE, UPDATE or DELETE.
    pub operation: Operation,
    /// `userInfo.username`.
    pub username: String,
    /// Whether this is a dry run (never persisted).
    pub dry_run: bool,
    /// `object` (absent on DELETE).
    pub object: Option<Value>,
    /// `oldObject` (UPDATE and DELETE).
    pub old_object: Option<Value>,
}

/// Why a review could not be used.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AdmissionError {
    /// The body is larger than [`REVIEW_BYTES_MAX`].
    #[error("AdmissionReview body is {0} bytes; at most {REVIEW_BYTES_MAX} are accepted")]
    TooLarge(usize),
    /// The body is not an AdmissionReview.
    #[error("body is not an admission.k8s.io/v1 AdmissionReview: {0}")]
    Malformed(String),
    /// The request has no uid to answer with.
    #[error("AdmissionReview.request.uid is missing")]
    NoUid,
    /// An operation the pipeline does not record (CONNECT); answered, not recorded.
    #[error("operation `{0}` is not recorded")]
    Unrecorded(String),
    /// A required field is missing for the operation.
    #[error("{0}")]
    Incomplete(String),
}

#[derive(Deserialize)]
struct Review {
    request: Option<Request>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default)]
    uid: String,
    resource: Gvr,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    operation: String,
    #[serde(default)]
    user_info: UserInfo,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    old_object: Option<Value>,
}

#[derive(Default, Deserialize)]
struct UserInfo {
    #[serde(default)]
    username: String,
}

/// Reads the uid of a review, if the body is JSON with one: enough to answer even a request this
/// module otherwise refuses.
pub fn review_uid(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("request")?.get("uid")?.as_str().map(str::to_owned)
}

/// Parses an AdmissionReview body into the request the pipeline records.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest, AdmissionError> {
    if body.len() > REVIEW_BYTES_MAX {
        return Err(AdmissionError::TooLarge(body.len()));
    }
    let review: Review =
        serde_json::from_slice(body).map_err(|e| AdmissionError::Malformed(e.to_string()))?;
    let req = review
        .request
        .ok_or_else(|| AdmissionError::Malformed("no `request`".into()))?;
    if req.uid.is_empty() {
        return Err(AdmissionError::NoUid);
    }
    let operation = Operation::parse(&req.operation)
        .ok_or_else(|| AdmissionError::Unrecorded(req.operation.clone()))?;
    let non_null = |v: Option<Value>| v.filter(|v| !v.is_null());
    let (object, old_object) = (non_null(req.object), non_null(req.old_object));
    // The request's name is empty for generateName creates; the object carries the final name.
    let name = req
        .name
        .filter(|n| !n.is_empty())
        .or_else(|| {
            object
                .as_ref()
                .or(old_object.as_ref())?
                .pointer("/metadata/name")?
                .as_str()
                .map(str::to_owned)
        })
        .ok_or_else(|| AdmissionError::Incomplete("request has no object name".into()))?;
    match operation {
        Operation::Create if object.is_none() => {
            return Err(AdmissionError::Incomplete("CREATE without `object`".into()))
        }
        Operation::Update if object.is_none() || old_object.is_none() => {
            return Err(AdmissionError::Incomplete(
                "UPDATE without `object` and `oldObject`".into(),
            ))
        }
        Operation::Delete if old_object.is_none() => {
            return Err(AdmissionError::Incomplete(
                "DELETE without `oldObject`".into(),
            ))
        }
        _ => {}
    }
    Ok(AdmissionRequest {
        uid: req.uid,
        gvr: req.resource,
        namespace: req.namespace.filter(|n| !n.is_empty()),
        name,
        operation,
        username: req.user_info.username,
        dry_run: req.dry_run.unwrap_or(false),
        object,
        old_object,
    })
}

/// The AdmissionReview answer: always allowed, with an optional warning shown to the client.
pub fn allow_response(uid: &str, warning: Option<&str>) -> Value {
    let mut response = json!({"uid": uid, "allowed": true});
    if let Some(w) = warning {
        response["warnings"] = json!([w]);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/kube-apiserver-1.20/admission.jsonl");

    #[test]
    fn parses_every_recorded_review() {
        let reqs: Vec<AdmissionRequest> = FIXTURE
            .lines()
            .map(|l| parse_review(l.as_bytes()).unwrap())
            .collect();
        assert_eq!(reqs.len(), 10);
        assert_eq!(
            (
                reqs[0].operation,
                reqs[0].username.as_str(),
                reqs[0].gvr.resource.as_str()
            ),
            (Operation::Create, "alice", "configmaps")
        );
        assert_eq!(
            reqs[1].old_object.as_ref().unwrap()["metadata"]["resourceVersion"],
            "202"
        );
        assert!(reqs[8].dry_run, "the recorded dry-run create");
        let del = &reqs[9];
        assert_eq!(del.operation, Operation::Delete);
        assert!(
            del.object.is_none() && del.old_object.is_some(),
            "DELETE carries oldObject, not object"
        );
    }

    #[test]
    fn malformed_bodies_get_a_clear_error() {
        assert!(matches!(
            parse_review(b"not json"),
            Err(AdmissionError::Malformed(_))
        ));
        assert!(matches!(
            parse_review(b"{}"),
            Err(AdmissionError::Malformed(_))
        ));
        let no_uid = br#"{"request": {"resource": {"version": "v1", "resource": "pods"}, "operation": "CREATE", "name": "a", "object": {}}}"#;
        assert_eq!(parse_review(no_uid), Err(AdmissionError::NoUid));
        let connect = br#"{"request": {"uid": "u", "resource": {"version": "v1", "resource": "pods"}, "operation": "CONNECT", "name": "a"}}"#;
        assert!(matches!(
            parse_review(connect),
            Err(AdmissionError::Unrecorded(_))
        ));
        let update_without_old = br#"{"request": {"uid": "u", "resource": {"version": "v1", "resource": "pods"}, "operation": "UPDATE", "name": "a", "object": {}}}"#;
        assert!(matches!(
            parse_review(update_without_old),
            Err(AdmissionError::Incomplete(_))
        ));
        assert!(matches!(
            parse_review(&vec![b' '; REVIEW_BYTES_MAX + 1]),
            Err(AdmissionError::TooLarge(_))
        ));
    }

    #[test]
    fn the_answer_always_allows_and_echoes_the_uid() {
        let r = allow_response("abc", Some("not recorded: x"));
        assert_eq!(r["response"]["allowed"], true);
        assert_eq!(r["response"]["uid"], "abc");
        assert_eq!(r["response"]["warnings"][0], "not recorded: x");
        assert_eq!(
            review_uid(br#"{"request": {"uid": "u1"}}"#).as_deref(),
            Some("u1")
        );
    }
}
