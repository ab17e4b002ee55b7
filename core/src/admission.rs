//! AdmissionReview parsing and answering. The webhook always allows: this module only reads.

use serde_json::{json, Value};
use thiserror::Error;

use crate::ids::{Gvr, Operation};
use crate::json::{Doc, Kind, NodeId, RawObject};

/// Largest AdmissionReview body accepted, in bytes (the apiserver's own request limit is 3 MiB).
pub const REVIEW_BYTES_MAX: usize = 3 * 1024 * 1024;

/// The parts of an admission request the pipeline uses.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
    pub object: Option<RawObject>,
    /// `oldObject` (UPDATE and DELETE).
    pub old_object: Option<RawObject>,
    /// `subResource` (`status`, `scale`, …) when the write went through one; its objects are then
    /// the subresource's (a `Scale`, say), not the resource's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
}

/// The name a record has outside the core: a fingerprint of its request's uid, which the API
/// server makes unique per request. A runtime's window of records and the core's
/// [`crate::Core::take_settled_records`] speak of records by it.
pub fn record_id(req: &AdmissionRequest) -> u64 {
    xxhash_rust::xxh3::xxh3_64(req.uid.as_bytes())
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

/// Reads the uid of a review, if the body is JSON with one: enough to answer even a request this
/// module otherwise refuses.
pub fn review_uid(body: &[u8]) -> Option<String> {
    let doc = Doc::parse(body).ok()?;
    doc.path(&["request", "uid"])
        .and_then(|u| doc.str(u))
        .map(str::to_owned)
}

/// Parses an AdmissionReview body into the request the pipeline records. `object` and `oldObject`
/// are kept as the JSON text the API server sent.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest, AdmissionError> {
    if body.len() > REVIEW_BYTES_MAX {
        return Err(AdmissionError::TooLarge(body.len()));
    }
    let doc = Doc::parse(body).map_err(|e| AdmissionError::Malformed(e.to_string()))?;
    // A body that names another type is refused, not guessed at (the API server always names it).
    let [api_version, kind] = doc.lookup(Doc::ROOT, ["apiVersion", "kind"]);
    let named = |n: Option<NodeId>| n.and_then(|n| doc.str(n));
    match (named(api_version), named(kind)) {
        (None, None) | (Some("admission.k8s.io/v1"), Some("AdmissionReview")) => {}
        (v, k) => {
            return Err(AdmissionError::Malformed(format!(
                "it is {} {}; expected admission.k8s.io/v1 AdmissionReview (set admissionReviewVersions: [v1])",
                v.unwrap_or("<no apiVersion>"),
                k.unwrap_or("<no kind>")
            )))
        }
    }
    let req = doc
        .get(Doc::ROOT, "request")
        .filter(|&r| doc.kind(r) == Kind::Object)
        .ok_or_else(|| AdmissionError::Malformed("no `request` object".into()))?;
    let text = |key: &str| doc.get_str(req, key).filter(|s| !s.is_empty());
    let gvr = doc
        .get(req, "resource")
        .and_then(|r| {
            let part = |k| doc.get_str(r, k);
            Some(Gvr::new(
                part("group").unwrap_or_default(),
                part("version")?,
                part("resource")?,
            ))
        })
        .ok_or_else(|| {
            AdmissionError::Malformed("`request.resource` needs `version` and `resource`".into())
        })?;
    let op_text = doc
        .get_str(req, "operation")
        .ok_or_else(|| AdmissionError::Malformed("`request.operation` is missing".into()))?;
    let uid = text("uid").ok_or(AdmissionError::NoUid)?.to_owned();
    let operation =
        Operation::parse(op_text).ok_or_else(|| AdmissionError::Unrecorded(op_text.into()))?;
    let object_at = |key: &str| doc.get(req, key).filter(|&o| doc.kind(o) != Kind::Null);
    let (object, old_object) = (object_at("object"), object_at("oldObject"));
    // The request's name is empty for generateName creates; the object carries the final name.
    let name = text("name")
        .or_else(|| {
            let o = object.or(old_object)?;
            doc.get(o, "metadata").and_then(|m| doc.get_str(m, "name"))
        })
        .ok_or_else(|| AdmissionError::Incomplete("request has no object name".into()))?
        .to_owned();
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
    let raw = |o: Option<NodeId>| {
        o.map(|o| match doc.kind(o) {
            // A string is no object; keep it as JSON text so the core refuses it like any other.
            Kind::String => RawObject::from(Value::String(doc.str(o).unwrap_or_default().into())),
            _ => RawObject::new(doc.raw(o)),
        })
    };
    Ok(AdmissionRequest {
        uid,
        gvr,
        namespace: text("namespace").map(str::to_owned),
        name,
        operation,
        username: doc
            .get(req, "userInfo")
            .and_then(|u| doc.get_str(u, "username"))
            .unwrap_or_default()
            .to_owned(),
        dry_run: doc.get(req, "dryRun").is_some_and(|d| doc.is_true(d)),
        object: raw(object),
        old_object: raw(old_object),
        sub_resource: text("subResource").map(str::to_owned),
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
            reqs[1].old_object.as_ref().unwrap().to_value().unwrap()["metadata"]["resourceVersion"],
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
        let other_kind = br#"{"apiVersion": "v1", "kind": "Pod", "request": {"uid": "u"}}"#;
        match parse_review(other_kind) {
            Err(AdmissionError::Malformed(m)) => assert!(m.contains("it is v1 Pod"), "{m}"),
            other => panic!("{other:?}"),
        }
        let old_version =
            br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u"}}"#;
        assert!(matches!(
            parse_review(old_version),
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
        // The API server's request limit is 3 MiB: a 2 MiB review (a large object and its old
        // version) is read.
        let mut large = br#"{"request": {"uid": "u", "resource": {"version": "v1", "resource": "configmaps"}, "operation": "DELETE", "name": "a", "namespace": "n", "userInfo": {"username": "bob"}, "oldObject": {"kind": "ConfigMap"}}}"#.to_vec();
        large.resize(2 * 1024 * 1024, b' ');
        assert_eq!(parse_review(&large).unwrap().username, "bob");
    }

    #[test]
    fn a_subresource_write_is_read_as_one() {
        let scale = br#"{"request": {"uid": "u", "resource": {"group": "apps", "version": "v1", "resource": "deployments"}, "subResource": "scale", "operation": "UPDATE", "name": "web", "namespace": "team-a", "userInfo": {"username": "bob"}, "object": {"kind": "Scale", "spec": {"replicas": 3}}, "oldObject": {"kind": "Scale", "spec": {"replicas": 1}}}}"#;
        let req = parse_review(scale).unwrap();
        assert_eq!(req.sub_resource.as_deref(), Some("scale"));
        assert_eq!(
            (req.gvr.resource.as_str(), req.name.as_str()),
            ("deployments", "web")
        );
        let plain = FIXTURE.lines().next().unwrap();
        assert_eq!(parse_review(plain.as_bytes()).unwrap().sub_resource, None);
    }

    #[test]
    fn a_generated_name_is_read_from_the_object() {
        let generated = br#"{"request": {"uid": "u", "resource": {"version": "v1", "resource": "configmaps"}, "name": "", "namespace": "team-a", "operation": "CREATE", "object": {"metadata": {"generateName": "job-", "name": "job-x7k2p"}}}}"#;
        assert_eq!(parse_review(generated).unwrap().name, "job-x7k2p");
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
