//! The pipeline's behaviour, one rule per test, driven through `Core`'s public contract.

mod common;

use common::*;
use gitops_reverser_core::admission::AdmissionRequest;
use gitops_reverser_core::config::{CrRef, NamespacedName, WatchRuleSpec};
use gitops_reverser_core::io::{GitOpKind, GitResult, Input, Output, WatchEvent};
use gitops_reverser_core::limits::BACKOFF_BASE_MS;
use gitops_reverser_core::Operation;
use gitops_reverser_core::RawObject;
use serde_json::{json, Value};

fn cm(name: &str, value: &str, rv: u64) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "team-a", "uid": format!("uid-{name}"), "resourceVersion": rv.to_string(),
            "managedFields": [{"manager": "kubectl", "time": format!("t{rv}")}]},
        "data": {"key": value}})
}

fn admission(op: Operation, user: &str, object: Option<Value>, old: Option<Value>) -> Input {
    Input::Admission(request(op, user, object, old))
}

/// An admission record with a uid of its own (`req-<user>`), for tests that name records.
fn named_request(op: Operation, user: &str, object: Value, old: Option<Value>) -> AdmissionRequest {
    AdmissionRequest {
        uid: format!("req-{user}"),
        ..request(op, user, Some(object), old)
    }
}

fn request(
    op: Operation,
    user: &str,
    object: Option<Value>,
    old: Option<Value>,
) -> AdmissionRequest {
    let name = object.as_ref().or(old.as_ref()).unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    AdmissionRequest {
        uid: "u".into(),
        gvr: gvr("", "v1", "configmaps"),
        namespace: Some("team-a".into()),
        name,
        operation: op,
        username: user.into(),
        dry_run: false,
        object: object.map(Into::into),
        old_object: old.map(Into::into),
        sub_resource: None,
    }
}

fn apply(obj: Value) -> Input {
    Input::Watch(gvr("", "v1", "configmaps"), WatchEvent::Apply(obj.into()))
}

fn delete(obj: Value) -> Input {
    Input::Watch(gvr("", "v1", "configmaps"), WatchEvent::Delete(obj.into()))
}

/// The configmaps stream relists and shows `objects`.
fn relist(h: &mut Harness, objects: Vec<Value>) {
    let cms = gvr("", "v1", "configmaps");
    h.input(Input::Watch(cms.clone(), WatchEvent::Init));
    for o in objects {
        h.input(Input::Watch(cms.clone(), WatchEvent::InitApply(o.into())));
    }
    h.input(Input::Watch(cms, WatchEvent::InitDone));
}

fn seeded() -> Harness {
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    h.seed_empty();
    h
}

/// A seeded harness whose one change (ConfigMap `a`) has waited out the push interval, and the
/// push it caused, not yet answered.
fn pushing_a() -> (Harness, gitops_reverser_core::io::GitOp) {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.advance(60_000);
    let op = h
        .take_git_ops()
        .pop()
        .expect("the interval triggers a push");
    (h, op)
}

fn subjects(commits: &[gitops_reverser_core::io::PlannedCommit]) -> Vec<String> {
    commits
        .iter()
        .map(|c| format!("{} {}", c.author.name, c.message.lines().next().unwrap()))
        .collect()
}

#[test]
fn a_watch_event_correlated_with_an_admission_is_authored_by_its_user() {
    let mut h = seeded();
    h.input(admission(
        Operation::Create,
        "alice",
        Some(cm("a", "1", 0)),
        None,
    ));
    h.input(apply(cm("a", "1", 10)));
    assert_eq!(
        subjects(&h.flush_and_push()),
        vec!["alice [CREATE] v1/configmaps/team-a/a"]
    );
}

#[test]
fn without_an_admission_record_the_fallback_identity_is_the_author() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    assert_eq!(
        subjects(&h.flush_and_push()),
        vec!["gitops-reverser [CREATE] v1/configmaps/team-a/a"]
    );
}

/// `kubectl scale` goes through the `scale` subresource: the webhook sees Scale objects, whose
/// content is not the object's. Nothing is recorded, so the change goes to the fallback author
/// (docs/operations.md), never to a record that cannot describe it.
#[test]
fn a_subresource_admission_is_not_recorded() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.flush_and_push();
    let scale = |replicas: u32, rv: u64| {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "a", "namespace": "team-a", "resourceVersion": rv.to_string()},
            "spec": {"replicas": replicas}})
    };
    let mut req = request(
        Operation::Update,
        "bob",
        Some(scale(3, 10)),
        Some(scale(1, 10)),
    );
    req.sub_resource = Some("scale".into());
    h.input(Input::Admission(req));
    let counters = h.core.attribution_counters();
    assert_eq!(
        (counters.subresource_skipped_total, counters.recorded_total),
        (1, 0)
    );
}

#[test]
fn status_only_updates_produce_no_commit() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.flush_and_push();
    let mut with_status = cm("a", "1", 11);
    with_status["status"] = json!({"observed": 11});
    h.input(apply(with_status));
    h.input(apply(cm("a", "1", 12))); // managedFields-only change
    assert!(h.flush_and_push().is_empty());
    assert_eq!(h.core.counters().watch_duplicates_skipped_total, 2);
}

#[test]
fn content_equal_to_what_is_pending_is_not_queued_twice() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.input(apply(cm("a", "2", 11)));
    h.input(apply(cm("a", "1", 12)));
    h.input(apply(cm("a", "1", 13)));
    let view = h.core.branch(&repo_name(), "main").unwrap();
    assert_eq!(
        view.pending_commits, 3,
        "the last event repeats pending content"
    );
}

#[test]
fn a_rejected_write_never_names_the_author_of_a_later_identical_write() {
    let mut h = seeded();
    h.input(admission(
        Operation::Create,
        "alice",
        Some(cm("a", "1", 0)),
        None,
    ));
    h.input(apply(cm("a", "1", 10)));
    // bob's update from base 10 is admitted, then rejected downstream: no watch event.
    h.input(admission(
        Operation::Update,
        "bob",
        Some(cm("a", "2", 10)),
        Some(cm("a", "1", 10)),
    ));
    // carol changes something else (her webhook call is missed), then the same content as bob's lands
    // from base 11 without a webhook record.
    h.input(apply(cm("a", "3", 11)));
    h.input(apply(cm("a", "2", 12)));
    let s = subjects(&h.flush_and_push());
    assert_eq!(
        s[2], "gitops-reverser [UPDATE] v1/configmaps/team-a/a",
        "never bob: {s:?}"
    );
}

#[test]
fn batches_flush_on_max_commits_without_waiting_for_the_interval() {
    let mut h = seeded();
    for i in 0..20 {
        h.input(apply(cm(&format!("o{i}"), "x", 10 + i)));
    }
    let ops = h.take_git_ops();
    assert_eq!(ops.len(), 1, "the 20th pending commit triggers a push");
    assert!(matches!(&ops[0].kind, GitOpKind::Push { commits, .. } if commits.len() == 20));
}

#[test]
fn batches_flush_on_one_mebibyte_of_pending_bytes() {
    let mut h = seeded();
    let big = "x".repeat(300 * 1024);
    for i in 0..3 {
        h.input(apply(cm(&format!("o{i}"), &big, 10 + i)));
    }
    assert!(
        h.take_git_ops().is_empty(),
        "900 KiB is below the byte trigger"
    );
    h.input(apply(cm("o3", &big, 20)));
    assert_eq!(h.take_git_ops().len(), 1);
}

#[test]
fn batches_flush_after_the_push_interval() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    assert_eq!(h.core.poll_deadline(), Some(h.now_ms + 60_000));
    h.advance(59_999);
    assert!(h.take_git_ops().is_empty());
    h.advance(1);
    assert_eq!(h.take_git_ops().len(), 1);
}

#[test]
fn a_push_conflict_replans_the_same_writes_on_the_new_head_and_keeps_the_outside_commit() {
    let (mut h, op) = pushing_a();
    // An outside writer pushes first.
    h.files
        .insert("README.md".into(), b"hello\n".to_vec().into());
    h.head = Some("outside".into());
    let result = h.apply(&op);
    assert!(matches!(result, GitResult::Conflict { .. }));
    h.input(Input::GitDone(op.op_id, result));
    // Someone else wrote the branch: read it again before planning on the new head.
    let read = h.take_git_ops().pop().expect("a read at once");
    assert!(matches!(&read.kind, GitOpKind::ReadPaths { folder } if folder == "prod"));
    let listing = h.apply(&read);
    h.input(Input::GitDone(read.op_id, listing));
    let retry = h.take_git_ops().pop().expect("re-planned at once");
    match &retry.kind {
        GitOpKind::Push {
            expected_head,
            commits,
        } => {
            assert_eq!(expected_head.as_deref(), Some("outside"));
            assert_eq!(commits.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    let r = h.apply(&retry);
    h.input(Input::GitDone(retry.op_id, r));
    assert!(
        h.files.contains_key("README.md")
            && h.files.contains_key("prod/v1/configmaps/team-a/a.yaml")
    );
    assert_eq!(h.core.counters().rebase_retries_total, 1);
}

/// Three conflicts in a row are retried at once (after re-reading the branch); from the fourth
/// on, the retry waits, doubling from `BACKOFF_BASE_MS`: a branch someone rewrites constantly is
/// not hammered.
#[test]
fn conflicts_in_a_row_back_off_after_the_third_doubling() {
    let (mut h, mut push) = pushing_a();
    let mut waits = Vec::new();
    for i in 1..=5 {
        h.head = Some(format!("outside-{i}"));
        let result = h.apply(&push);
        assert!(matches!(result, GitResult::Conflict { .. }));
        h.input(Input::GitDone(push.op_id, result));
        // The retry's wait, to the millisecond (folder reads answered as they come).
        let mut waited = 0;
        let next = 'retry: loop {
            for op in h.take_git_ops() {
                if matches!(op.kind, GitOpKind::Push { .. }) {
                    break 'retry op;
                }
                let listing = h.apply(&op);
                h.input(Input::GitDone(op.op_id, listing));
            }
            if h.outputs.iter().any(|o| matches!(o, Output::Git(_))) {
                continue;
            }
            h.advance(1);
            waited += 1;
            assert!(
                waited <= 10 * BACKOFF_BASE_MS,
                "no retry after conflict {i}"
            );
        };
        waits.push(waited);
        push = next;
    }
    assert_eq!(waits, [0, 0, 0, BACKOFF_BASE_MS, 2 * BACKOFF_BASE_MS]);
}

#[test]
fn a_file_removed_by_someone_else_is_not_deleted_again_after_a_conflict() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.flush_and_push();
    h.input(delete(cm("a", "1", 11)));
    h.advance(60_000);
    let op = h.take_git_ops().pop().unwrap();
    // Someone removes the file first: the planned delete would now change nothing.
    h.files.remove("prod/v1/configmaps/team-a/a.yaml");
    h.head = Some("outside".into());
    let result = h.apply(&op);
    h.input(Input::GitDone(op.op_id, result));
    let pushed = h.answer_all();
    assert!(pushed.is_empty(), "no empty commit: {pushed:?}");
    assert_eq!(
        h.core.branch(&repo_name(), "main").unwrap().pending_commits,
        0
    );
}

#[test]
fn a_seed_write_the_repository_holds_goes_while_a_later_change_stays() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.flush_and_push();
    // Relist: the list shows the object as the repo has it, then a change arrives before the
    // folder is read.
    relist(&mut h, vec![cm("a", "1", 10)]);
    h.input(apply(cm("a", "2", 12)));
    let pushed = h.flush_and_push();
    assert_eq!(
        subjects(&pushed),
        ["gitops-reverser [UPDATE] v1/configmaps/team-a/a"]
    );
}

#[test]
fn a_failed_push_is_retried_with_backoff_and_never_dropped() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.advance(60_000);
    let mut delays = Vec::new();
    for _ in 0..4 {
        let op = h.take_git_ops().pop().expect("a push is outstanding");
        h.fail(op.op_id, "connection refused");
        let at = h.core.poll_deadline().unwrap();
        delays.push(at - h.now_ms);
        h.input(apply(cm("b", "1", 20 + delays.len() as u64))); // work keeps arriving meanwhile
        assert!(
            h.take_git_ops().is_empty(),
            "no retry before the backoff ends"
        );
        h.now_ms = at;
        h.input(Input::Tick);
    }
    assert_eq!(
        delays,
        vec![
            BACKOFF_BASE_MS,
            2 * BACKOFF_BASE_MS,
            4 * BACKOFF_BASE_MS,
            8 * BACKOFF_BASE_MS
        ]
    );
    let status = h.core.status(&CrRef::GitRepoConfig(repo_name())).unwrap();
    assert!(status.iter().any(|c| c.type_ == "Pushed"
        && !c.status
        && c.reason == "PushFailed"
        && c.message.contains("connection refused")));
    let pushed = h.answer_all();
    assert_eq!(
        subjects(&pushed),
        vec![
            "gitops-reverser [CREATE] v1/configmaps/team-a/a",
            "gitops-reverser [CREATE] v1/configmaps/team-a/b"
        ]
    );
    assert!(h
        .core
        .status(&CrRef::GitRepoConfig(repo_name()))
        .unwrap()
        .iter()
        .all(|c| c.type_ != "Pushed"));
}

#[test]
fn an_unknown_push_result_is_verified_before_anything_is_retried() {
    let (mut h, op) = pushing_a();
    let landed = h.apply(&op); // it did land, but the acknowledgement was lost
    assert!(matches!(landed, GitResult::Pushed { .. }));
    h.input(Input::GitDone(op.op_id, GitResult::Unknown));
    let verify = h.take_git_ops().pop().unwrap();
    let GitOpKind::Verify { op_tag, .. } = &verify.kind else {
        panic!("{:?}", verify.kind)
    };
    let GitOpKind::Push { commits, .. } = &op.kind else {
        unreachable!()
    };
    assert!(commits[0]
        .message
        .contains(&format!("Reverser-Op: {op_tag}")));
    h.input(Input::GitDone(
        verify.op_id,
        GitResult::Verified {
            head: h.head.clone(),
            landed: true,
        },
    ));
    // The folders are read again (others may have written on top of the landed push), but
    // nothing is pushed twice.
    let ops = h.take_git_ops();
    assert!(
        ops.iter()
            .all(|o| matches!(o.kind, GitOpKind::ReadPaths { .. })),
        "{ops:?}"
    );
    assert_eq!(h.core.counters().commits_total, 1);
}

/// The wake-up for a verify that failed must not wait for the branch's folders: the verify goes
/// before any read or push, gate or no gate. (The deadline once skipped branches whose gate was
/// closed, and a new folder on the branch closes it until its streams are listed.)
/// A remote that hangs: the executor's failure names its kind, and the GitRepoConfig's `Pushed`
/// condition carries it as its reason until a push lands.
#[test]
fn a_push_failure_names_its_kind_in_the_pushed_condition() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.advance(60_000);
    let op = h.take_git_ops().pop().expect("a push is outstanding");
    h.input(Input::GitDone(
        op.op_id,
        GitResult::Failed {
            retryable: true,
            reason: "git://h/r.git made no progress within the git timeout".into(),
            cause: "RemoteTimeout".into(),
        },
    ));
    let status = h.core.status(&CrRef::GitRepoConfig(repo_name())).unwrap();
    let pushed = status
        .iter()
        .find(|c| c.type_ == "Pushed")
        .expect("a Pushed condition");
    assert!(!pushed.status);
    assert_eq!(pushed.reason, "RemoteTimeout");
    assert!(pushed.message.contains("no progress"), "{}", pushed.message);
    h.advance(60_000);
    h.answer_all();
    assert!(h
        .core
        .status(&CrRef::GitRepoConfig(repo_name()))
        .unwrap()
        .iter()
        .all(|c| c.type_ != "Pushed"));
}

#[test]
fn a_failed_verify_is_retried_when_its_backoff_ends_while_a_new_folder_waits_for_its_list() {
    let (mut h, push) = pushing_a();
    h.input(Input::GitDone(push.op_id, GitResult::Unknown));
    let verify = h.take_git_ops().pop().unwrap();
    assert!(matches!(verify.kind, GitOpKind::Verify { .. }));
    h.fail(verify.op_id, "connection reset");
    // A second folder on the same branch: its streams must be listed before it is read.
    let rule: WatchRuleSpec = serde_json::from_value(json!({
        "gitRepoConfigRef": "my-repo", "baseFolder": "staging",
        "resources": [{"group": "", "version": "v1", "resource": "secrets"}]}))
    .unwrap();
    h.input(Input::WatchRule(
        NamespacedName::new("team-a", "second"),
        Some(rule),
    ));
    let retry_at = h.now_ms + BACKOFF_BASE_MS;
    assert_eq!(h.core.poll_deadline(), Some(retry_at));
    h.advance(BACKOFF_BASE_MS);
    let ops = h.take_git_ops();
    assert!(
        matches!(ops.as_slice(), [op] if matches!(op.kind, GitOpKind::Verify { .. })),
        "{ops:?}"
    );
}

/// Changes made while the GitRepoConfig was gone (or invalid) are not lost when it comes back:
/// the core knew nothing of the branch meanwhile, so it lists the streams and reads the folder
/// again, as for a new destination.
#[test]
fn changes_made_while_the_repository_config_was_gone_are_written_when_it_returns() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.input(apply(cm("b", "1", 11)));
    h.advance(60_000);
    h.answer_all();
    h.outputs.clear();
    let spec = |branches: &[&str]| {
        serde_json::from_value(json!({
            "repoURL": "https://git.example/org/repo", "allowedBranches": branches}))
        .unwrap()
    };
    h.input(Input::GitRepoConfig(repo_name(), Some(spec(&["other"]))));
    h.input(apply(cm("a", "2", 12)));
    h.input(delete(cm("b", "1", 13)));
    h.input(Input::GitRepoConfig(repo_name(), Some(spec(&["main"]))));
    let resyncs: Vec<_> = h
        .outputs
        .iter()
        .filter(|o| matches!(o, Output::Resync(g) if *g == gvr("", "v1", "configmaps")))
        .collect();
    assert!(!resyncs.is_empty(), "{:?}", h.outputs);
    relist(&mut h, vec![cm("a", "2", 12)]);
    h.advance(60_000);
    h.answer_all();
    assert_eq!(
        h.files
            .get("prod/v1/configmaps/team-a/a.yaml")
            .map(|f| std::str::from_utf8(f).unwrap()),
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: team-a\ndata:\n  key: \"2\"\n")
    );
    assert!(!h.files.contains_key("prod/v1/configmaps/team-a/b.yaml"));
}

#[test]
fn orphans_are_deleted_only_under_the_folder_and_only_in_our_layout() {
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    for p in [
        "prod/v1/configmaps/team-a/gone.yaml",
        "prod/v1/configmaps/team-a/live.yaml",
        "prod/README.md",
        "prod/v1/secrets/team-a/other-kind.yaml",
        "staging/v1/configmaps/team-a/gone.yaml",
        "prod/notes/v1/configmaps/x.yaml",
    ] {
        h.files.insert(p.into(), b"x: 1\n".to_vec().into());
    }
    let g = gvr("", "v1", "configmaps");
    h.input(Input::Watch(g.clone(), WatchEvent::Init));
    h.input(Input::Watch(
        g.clone(),
        WatchEvent::InitApply(cm("live", "1", 5).into()),
    ));
    assert!(h.take_git_ops().is_empty(), "no listing before InitDone");
    h.input(Input::Watch(g, WatchEvent::InitDone));
    h.answer_all();
    let pushed = h.flush_and_push();
    let files: Vec<&String> = h.files.keys().collect();
    assert_eq!(
        files,
        vec![
            "prod/README.md",
            "prod/notes/v1/configmaps/x.yaml",
            "prod/v1/configmaps/team-a/live.yaml",
            "prod/v1/secrets/team-a/other-kind.yaml",
            "staging/v1/configmaps/team-a/gone.yaml"
        ]
    );
    assert_eq!(
        pushed.len(),
        1,
        "the seed's writes and orphan deletes form one resync commit"
    );
    assert_eq!(h.core.counters().orphans_found_total, 1);
}

#[test]
fn a_relist_after_410_gone_deletes_what_vanished_during_the_gap() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.input(apply(cm("b", "1", 11)));
    h.flush_and_push();
    let g = gvr("", "v1", "configmaps");
    h.input(Input::Watch(g.clone(), WatchEvent::Init));
    h.input(Input::Watch(
        g.clone(),
        WatchEvent::InitApply(cm("a", "1", 10).into()),
    ));
    h.input(Input::Watch(g, WatchEvent::InitDone));
    h.answer_all();
    h.flush_and_push();
    assert_eq!(
        h.files.keys().collect::<Vec<_>>(),
        vec!["prod/v1/configmaps/team-a/a.yaml"]
    );
}

#[test]
fn a_restart_seed_commits_only_real_differences() {
    let mut h = seeded();
    h.input(apply(cm("same", "1", 10)));
    h.input(apply(cm("changed", "1", 11)));
    h.flush_and_push();
    // A new core (crash): same remote, same cluster except one change.
    let files = h.files.clone();
    let head = h.head.clone();
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    h.files = files;
    h.head = head;
    let g = gvr("", "v1", "configmaps");
    h.input(Input::Watch(g.clone(), WatchEvent::Init));
    h.input(Input::Watch(
        g.clone(),
        WatchEvent::InitApply(cm("same", "1", 10).into()),
    ));
    h.input(Input::Watch(
        g.clone(),
        WatchEvent::InitApply(cm("changed", "2", 12).into()),
    ));
    h.input(Input::Watch(g, WatchEvent::InitDone));
    h.answer_all();
    let pushed = h.flush_and_push();
    assert_eq!(pushed.len(), 1);
    assert_eq!(
        pushed[0]
            .writes
            .iter()
            .map(|w| w.0.as_str())
            .collect::<Vec<_>>(),
        vec!["prod/v1/configmaps/team-a/changed.yaml"]
    );
}

#[test]
fn an_object_leaving_the_selector_is_removed_from_the_folder() {
    let mut h = Harness::new();
    let repo =
        serde_json::from_value(json!({"repoURL": "https://h/r", "allowedBranches": ["main"]}))
            .unwrap();
    h.input(Input::GitRepoConfig(repo_name(), Some(repo)));
    let rule: WatchRuleSpec = serde_json::from_value(json!({"gitRepoConfigRef": "my-repo",
        "resources": [{"version": "v1", "resource": "configmaps"}], "objectSelector": {"matchLabels": {"keep": "yes"}}})).unwrap();
    h.input(Input::WatchRule(
        NamespacedName::new("team-a", "r"),
        Some(rule),
    ));
    h.gvrs = vec![gvr("", "v1", "configmaps")];
    h.seed_empty();
    let mut labelled = cm("a", "1", 10);
    labelled["metadata"]["labels"] = json!({"keep": "yes"});
    h.input(apply(labelled));
    h.flush_and_push();
    assert!(h.files.contains_key("v1/configmaps/team-a/a.yaml"));
    h.input(apply(cm("a", "1", 11)));
    h.flush_and_push();
    assert!(h.files.is_empty());
}

#[test]
fn deletes_remove_the_file_and_are_attributed() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.flush_and_push();
    h.input(admission(
        Operation::Delete,
        "alice",
        None,
        Some(cm("a", "1", 10)),
    ));
    h.input(delete(cm("a", "1", 11)));
    assert_eq!(
        subjects(&h.flush_and_push()),
        vec!["alice [DELETE] v1/configmaps/team-a/a"]
    );
    assert!(h.files.is_empty());
}

#[test]
fn secret_values_never_reach_git() {
    let mut h = Harness::with_rule(&[("", "v1", "secrets")], "");
    h.seed_empty();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "team-a"},
        "data": {"password": "aHVudGVyMg=="}});
    h.input(Input::Watch(
        gvr("", "v1", "secrets"),
        WatchEvent::Apply(secret.into()),
    ));
    let pushed = h.flush_and_push();
    let file = pushed[0].writes[0].1.as_ref().unwrap().render();
    let text = String::from_utf8_lossy(&file);
    assert!(
        text.contains("password: \"<redacted>\"") && !text.contains("aHVudGVyMg=="),
        "{text}"
    );
}

#[test]
fn the_watch_set_follows_rules_as_they_come_and_go() {
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "");
    assert!(h
        .outputs
        .contains(&Output::EnsureWatches([gvr("", "v1", "configmaps")].into())));
    h.input(Input::WatchRule(
        NamespacedName::new("team-a", "rule"),
        None,
    ));
    assert_eq!(
        h.outputs.last(),
        Some(&Output::EnsureWatches(Default::default()))
    );
    assert!(h.core.watched().is_empty());
}

#[test]
fn invalid_rules_get_a_status_condition_saying_what_to_fix() {
    let mut h = Harness::new();
    let rule: WatchRuleSpec = serde_json::from_value(json!({"gitRepoConfigRef": "missing", "resources": [{"version": "v1", "resource": "configmaps"}]})).unwrap();
    h.input(Input::WatchRule(
        NamespacedName::new("team-a", "r"),
        Some(rule),
    ));
    let st = h
        .core
        .status(&CrRef::WatchRule(NamespacedName::new("team-a", "r")))
        .unwrap();
    assert_eq!(
        (st[0].status, st[0].reason.as_str()),
        (false, "GitRepoConfigNotFound")
    );
    assert!(h
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Status(CrRef::WatchRule(_), c) if !c[0].status)));
}

#[test]
fn objects_with_unusable_names_are_refused_with_a_reason_and_nothing_else_is_lost() {
    let mut h = seeded();
    h.input(apply(cm("..", "1", 10)));
    h.input(apply(cm("fine", "1", 11)));
    assert!(h
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Refused { reason, .. } if reason.contains("relative path"))));
    assert_eq!(
        subjects(&h.flush_and_push()),
        vec!["gitops-reverser [CREATE] v1/configmaps/team-a/fine"]
    );
}

#[test]
fn objects_that_are_not_json_are_refused_with_a_reason_and_nothing_else_is_lost() {
    let mut h = seeded();
    let cms = gvr("", "v1", "configmaps");
    let broken =
        RawObject::new(&br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x""#[..]);
    h.input(Input::Watch(cms.clone(), WatchEvent::Apply(broken.clone())));
    h.input(admission(
        Operation::Create,
        "alice",
        Some(cm("fine", "1", 0)),
        None,
    ));
    let mut bad_admission =
        match admission(Operation::Create, "mallory", Some(cm("x", "1", 0)), None) {
            Input::Admission(r) => r,
            _ => unreachable!(),
        };
    bad_admission.object = Some(broken);
    h.input(Input::Admission(bad_admission));
    h.input(apply(cm("fine", "1", 11)));
    let reasons: Vec<&str> = h
        .outputs
        .iter()
        .filter_map(|o| match o {
            Output::Refused { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "watch object not read: invalid JSON: unexpected end at byte 60",
            "admission not recorded: invalid JSON: unexpected end at byte 60"
        ]
    );
    assert_eq!(
        subjects(&h.flush_and_push()),
        vec!["alice [CREATE] v1/configmaps/team-a/fine"]
    );
}

#[test]
fn same_inputs_give_the_same_outputs() {
    let run = || {
        let mut h = seeded();
        for i in 0..30 {
            h.input(apply(cm(&format!("o{}", i % 7), &i.to_string(), 10 + i)));
        }
        h.flush_and_push();
        format!("{:?}", h.commits)
    };
    assert_eq!(run(), run());
}

#[test]
fn a_create_seen_first_in_a_relist_keeps_its_author() {
    let mut h = seeded();
    h.input(admission(
        Operation::Create,
        "alice",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "team-a"}, "data": {"key": "1"}})),
        None,
    ));
    // The watch event is lost in a relist; the list shows the new object.
    relist(&mut h, vec![cm("a", "1", 10)]);
    let pushed = h.flush_and_push();
    assert_eq!(subjects(&pushed), ["alice [CREATE] v1/configmaps/team-a/a"]);
}

#[test]
fn a_listing_recognises_the_files_the_core_pushed_by_the_blob_ids_the_executor_reported() {
    // (blob ids the executor reports, whether the later listing must look diverged)
    let cases = [
        ("reported", false),
        ("not reported", false),
        ("wrong", true),
    ];
    for (blobs, diverged) in cases {
        let mut h = seeded();
        h.input(apply(cm("a", "1", 10)));
        h.advance(60_000);
        let op = h.take_git_ops().pop().unwrap();
        let mut result = h.apply(&op);
        let GitResult::Pushed { blobs: ids, .. } = &mut result else {
            panic!("{result:?}")
        };
        match blobs {
            // A push verified after its result was lost reports none: the core renders.
            "not reported" => ids.clear(),
            "wrong" => ids[0][0] = Some([7; 20]),
            _ => {}
        }
        h.input(Input::GitDone(op.op_id, result));
        h.outputs.clear();
        // A relist (410 Gone) reads the folder again; it holds exactly what the core pushed.
        relist(&mut h, vec![cm("a", "1", 10)]);
        h.answer_all();
        let resynced = h.outputs.iter().any(|o| matches!(o, Output::Resync(_)));
        assert_eq!(resynced, diverged, "blob ids {blobs}");
        if !diverged {
            assert!(h.flush_and_push().is_empty(), "nothing to write");
        }
    }
}

#[test]
fn a_flush_pushes_pending_commits_at_once_and_later_ones_without_waiting() {
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.input(apply(cm("b", "1", 11)));
    assert!(
        h.take_git_ops().is_empty(),
        "two commits wait for the interval"
    );
    assert_eq!(h.core.unfinished(), (2, 0));
    h.input(Input::Flush);
    let pushed = h.answer_all();
    assert_eq!(
        subjects(&pushed).len(),
        2,
        "both pushed without the interval"
    );
    assert_eq!(h.core.unfinished(), (0, 0));
    // A change still arriving during a shutdown goes out at once too.
    h.input(apply(cm("c", "1", 12)));
    assert_eq!(h.core.poll_deadline(), Some(h.now().mono_ms));
    h.input(Input::Tick);
    assert_eq!(h.answer_all().len(), 1);
}

/// A harness whose one rule (ConfigMaps in team-a, folder `prod`) lists `operations`.
fn with_operations(operations: &[&str]) -> Harness {
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    let rule: WatchRuleSpec = serde_json::from_value(json!({
        "gitRepoConfigRef": "my-repo", "baseFolder": "prod",
        "resources": [{"group": "", "version": "v1", "resource": "configmaps"}],
        "operations": operations}))
    .unwrap();
    h.input(Input::WatchRule(
        NamespacedName::new("team-a", "rule"),
        Some(rule),
    ));
    h.seed_empty();
    h
}

fn file_a(h: &Harness) -> Option<String> {
    h.files
        .get("prod/v1/configmaps/team-a/a.yaml")
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
}

#[test]
fn an_update_its_rule_leaves_out_keeps_the_file_until_a_resync() {
    let mut h = with_operations(&["CREATE", "DELETE"]);
    h.input(apply(cm("a", "1", 10)));
    h.flush_and_push();
    h.input(apply(cm("a", "2", 11)));
    assert!(h.flush_and_push().is_empty(), "no commit for the update");
    assert!(
        file_a(&h).unwrap().contains("key: \"1\""),
        "{:?}",
        file_a(&h)
    );
    // A resync brings the folder to the cluster's state, whatever the rule's operations.
    relist(&mut h, vec![cm("a", "2", 11)]);
    h.answer_all();
    h.flush_and_push();
    assert!(
        file_a(&h).unwrap().contains("key: \"2\""),
        "{:?}",
        file_a(&h)
    );
    h.input(delete(cm("a", "2", 12)));
    h.flush_and_push();
    assert_eq!(file_a(&h), None);
}

#[test]
fn a_delete_its_rule_leaves_out_keeps_the_file_until_a_resync() {
    let mut h = with_operations(&["CREATE", "UPDATE"]);
    h.input(apply(cm("a", "1", 10)));
    h.flush_and_push();
    h.input(delete(cm("a", "1", 11)));
    assert!(h.flush_and_push().is_empty(), "no commit for the delete");
    assert!(file_a(&h).is_some());
    relist(&mut h, vec![]);
    h.answer_all();
    h.flush_and_push();
    assert_eq!(file_a(&h), None, "the relist shows the object gone");
}

/// An object larger than `OBJECT_BYTES_MAX` once sanitized is refused with a reason, and its file
/// is not written; its delete still removes a file written when it was smaller.
#[test]
fn an_oversized_object_is_refused_and_its_delete_still_goes() {
    use gitops_reverser_core::limits::OBJECT_BYTES_MAX;
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    h.flush_and_push();
    assert!(file_a(&h).is_some());
    let big = "x".repeat(OBJECT_BYTES_MAX + 1);
    h.input(apply(cm("a", &big, 11)));
    let refused: Vec<&String> = h
        .outputs
        .iter()
        .filter_map(|o| match o {
            Output::Refused { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1, "{:?}", h.outputs);
    assert!(refused[0].contains("bytes"), "{}", refused[0]);
    h.flush_and_push();
    assert!(
        file_a(&h).unwrap().contains("key: \"1\""),
        "the last file that fits stays"
    );
    h.input(delete(cm("a", &big, 12)));
    h.flush_and_push();
    assert_eq!(file_a(&h), None);
    // A large object under the limit is still written.
    let fits = {
        let mut v = cm("b", "", 13);
        let overhead = serde_json::to_vec(&v).unwrap().len();
        v["data"]["key"] = json!("y".repeat(OBJECT_BYTES_MAX.saturating_sub(overhead) / 2));
        v
    };
    h.input(apply(fits));
    h.flush_and_push();
    assert!(h.files.contains_key("prod/v1/configmaps/team-a/b.yaml"));
    // The limit is 2 MiB (etcd's default request limit is 1.5 MiB, so every stored object fits).
    let mib_and_a_half = cm("c", &"z".repeat(3 * 512 * 1024), 14);
    h.input(apply(mib_and_a_half));
    h.flush_and_push();
    assert!(h.files.contains_key("prod/v1/configmaps/team-a/c.yaml"));
}

#[test]
fn the_branches_to_keep_clones_of_follow_the_repository_url_and_go_with_the_config() {
    let mut h = seeded();
    let remotes = |h: &Harness| -> Vec<(String, String)> {
        h.core
            .branch_remotes()
            .into_iter()
            .map(|(_, url, branch)| (url, branch))
            .collect()
    };
    let before = remotes(&h);
    assert_eq!(before.len(), 1, "{before:?}");
    let spec = json!({"repoURL": "https://git.example/org/moved", "allowedBranches": ["main"]});
    h.input(Input::GitRepoConfig(
        repo_name(),
        Some(serde_json::from_value(spec).unwrap()),
    ));
    assert_eq!(
        remotes(&h),
        vec![(
            "https://git.example/org/moved".to_string(),
            before[0].1.clone()
        )]
    );
    h.input(Input::GitRepoConfig(repo_name(), None));
    assert!(remotes(&h).is_empty());
}

/// Bounds small enough that a listing of ten objects goes out in several parts.
fn small_parts() -> gitops_reverser_core::CoreConfig {
    gitops_reverser_core::CoreConfig {
        push_bounds: gitops_reverser_core::PushBounds {
            commits_max: 2,
            bytes_max: 1 << 20,
            part_writes_max: 3,
        },
        ..Default::default()
    }
}

const STALE: &str = "prod/v1/configmaps/team-a/gone.yaml";

/// A harness with small parts whose remote holds a file of ours whose object is gone, and whose
/// ConfigMap stream has begun a list of `o0`..`o9` without ending it.
fn listing_ten() -> Harness {
    let mut h = Harness::with_config(small_parts(), &[("", "v1", "configmaps")], "prod");
    h.files.insert(STALE.into(), b"stale\n".to_vec().into());
    h.head = Some("c0".into());
    let g = gvr("", "v1", "configmaps");
    h.input(Input::Watch(g.clone(), WatchEvent::Init));
    for i in 0..10 {
        let o = cm(&format!("o{i}"), "1", 10 + i);
        h.input(Input::Watch(g.clone(), WatchEvent::InitApply(o.into())));
    }
    h
}

fn live_files(h: &Harness) -> Vec<String> {
    h.files.keys().cloned().collect()
}

fn all_ten() -> Vec<String> {
    (0..10)
        .map(|i| format!("prod/v1/configmaps/team-a/o{i}.yaml"))
        .collect()
}

#[test]
fn a_large_seed_goes_out_in_bounded_parts_while_its_list_runs_and_orphans_wait_for_its_end() {
    let mut h = listing_ten();
    let pushes = h.answer_all_per_push();
    assert!(
        pushes.len() >= 2,
        "pushed before the list ended, in several pushes: {pushes:?}"
    );
    for p in &pushes {
        assert!(p.len() <= 2, "at most 2 commits a push");
        for c in p {
            assert!(c.message.starts_with("[RESYNC]"), "{}", c.message);
            assert!(c.writes.len() <= 3, "at most 3 files a part");
            assert!(c.writes.iter().all(|w| w.1.is_some()), "no delete yet");
        }
    }
    assert!(
        h.files.contains_key(STALE),
        "the orphan stays while the list runs"
    );
    h.input(Input::Watch(
        gvr("", "v1", "configmaps"),
        WatchEvent::InitDone,
    ));
    h.answer_all();
    h.flush_and_push();
    assert_eq!(
        live_files(&h),
        all_ten(),
        "every object's file, and the orphan gone"
    );
}

#[test]
fn a_seed_cut_by_a_crash_between_parts_loses_nothing_and_deletes_nothing() {
    let mut h = listing_ten();
    // The folder read, then the first push lands; the process dies before the next one.
    let read = h.take_git_ops();
    assert!(matches!(read[..], [ref op] if matches!(op.kind, GitOpKind::ReadPaths { .. })));
    let result = h.apply(&read[0]);
    h.input(Input::GitDone(read[0].op_id, result));
    let first = h.take_git_ops();
    assert!(matches!(first[..], [ref op] if matches!(op.kind, GitOpKind::Push { .. })));
    let result = h.apply(&first[0]);
    assert!(matches!(result, GitResult::Pushed { .. }));
    let landed = live_files(&h);
    assert!(
        landed.len() > 1 && landed.len() < 11,
        "a part landed, not the whole seed: {landed:?}"
    );
    assert!(
        h.files.contains_key(STALE),
        "no orphan deleted before the list ended"
    );

    // A new process: same remote, the same ten objects listed again.
    let (files, head) = (h.files.clone(), h.head.clone());
    let mut h = Harness::with_config(small_parts(), &[("", "v1", "configmaps")], "prod");
    (h.files, h.head) = (files, head);
    let g = gvr("", "v1", "configmaps");
    h.input(Input::Watch(g.clone(), WatchEvent::Init));
    for i in 0..10 {
        let o = cm(&format!("o{i}"), "1", 10 + i);
        h.input(Input::Watch(g.clone(), WatchEvent::InitApply(o.into())));
    }
    let pushes = h.answer_all_per_push();
    for c in pushes.iter().flatten() {
        assert!(
            c.writes.iter().all(|w| w.1.is_some()),
            "nothing deleted while the list runs: {c:?}"
        );
        assert!(
            c.writes
                .iter()
                .all(|w| !landed.contains(&w.0) || w.0 == STALE),
            "a part that landed before the crash is not written again: {c:?}"
        );
    }
    h.input(Input::Watch(g, WatchEvent::InitDone));
    h.answer_all();
    h.flush_and_push();
    assert_eq!(live_files(&h), all_ten());
}

#[test]
fn intake_pauses_while_a_branch_whose_pushes_land_is_backlogged_never_for_a_failing_one() {
    let mut h = seeded();
    let big = "x".repeat(1 << 20);
    for i in 0..60 {
        h.input(apply(cm(&format!("big-{i}"), &big, 100 + i)));
    }
    // More than a push is pending: the first push (at most 8 MiB) goes at once.
    let ops = h.take_git_ops();
    assert_eq!(ops.len(), 1);
    assert!(
        h.core.backlogged(),
        "about 53 MiB still pending behind the push in flight"
    );
    h.fail(ops[0].op_id, "connection reset by peer");
    assert!(
        !h.core.backlogged(),
        "a branch whose pushes fail holds back nobody's intake"
    );
    h.advance(BACKOFF_BASE_MS);
    let op = h.take_git_ops().pop().expect("the retry");
    let result = h.apply(&op);
    h.input(Input::GitDone(op.op_id, result));
    assert!(
        h.core.backlogged(),
        "its pushes land again (the next one is in flight), and it still holds more than 32 MiB"
    );
    h.answer_all();
    assert!(!h.core.backlogged(), "caught up");
    assert_eq!(h.files.len(), 60, "nothing lost");
}

/// The core of a restarted (or newly elected) operator over the branch its predecessor pushed:
/// ConfigMaps `a` (`1`) and `b` (`1`) in the repository, nothing known in memory.
fn restarted_over_a_and_b() -> Harness {
    restarted_over(vec![cm("a", "1", 10), cm("b", "1", 11)])
}

/// The core of a restarted operator over the branch its predecessor pushed after the watch
/// showed `objects`, in order.
fn restarted_over(objects: Vec<Value>) -> Harness {
    let mut h = seeded();
    for o in objects {
        h.input(apply(o));
    }
    h.flush_and_push();
    let (files, head) = (h.files.clone(), h.head.clone());
    let mut fresh = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    fresh.files = files;
    fresh.head = head;
    fresh
}

#[test]
fn after_a_restart_the_records_handed_again_name_the_authors_of_what_the_first_list_shows() {
    let mut h = restarted_over_a_and_b();
    // Admitted before the kill, not yet pushed; handed to the new core from the records window.
    h.input(admission(
        Operation::Update,
        "alice",
        Some(cm("a", "2", 12)),
        Some(cm("a", "1", 10)),
    ));
    h.input(admission(
        Operation::Create,
        "bob",
        Some(cm("c", "1", 13)),
        None,
    ));
    relist(
        &mut h,
        vec![cm("a", "2", 12), cm("b", "1", 11), cm("c", "1", 13)],
    );
    let pushed = h.flush_and_push();
    assert_eq!(
        subjects(&pushed),
        [
            "alice [UPDATE] v1/configmaps/team-a/a",
            "bob [CREATE] v1/configmaps/team-a/c"
        ]
    );
}

#[test]
fn after_a_restart_an_update_record_names_nobody_for_another_object_or_when_two_users_fit() {
    let mut h = restarted_over_a_and_b();
    // a: alice's and carol's records both fit the listed content; b was created anew in the gap
    // (another uid), and bob's record is of the object that went.
    for user in ["alice", "carol"] {
        h.input(admission(
            Operation::Update,
            user,
            Some(cm("a", "2", 12)),
            Some(cm("a", "1", 10)),
        ));
    }
    h.input(admission(
        Operation::Update,
        "bob",
        Some(cm("b", "2", 14)),
        Some(cm("b", "1", 11)),
    ));
    let mut b_again = cm("b", "2", 15);
    b_again["metadata"]["uid"] = json!("uid-b-2");
    relist(&mut h, vec![cm("a", "2", 12), b_again]);
    let pushed = h.flush_and_push();
    assert_eq!(
        subjects(&pushed),
        ["gitops-reverser [RESYNC] 2 changes from the cluster under prod"]
    );
}

#[test]
fn a_record_admitted_after_one_made_on_the_listed_version_does_not_name_that_version() {
    // Handed after a restart: alice changed a from version 10 to content 2, then the deployer
    // changed it back to content 1. A stale list shows version 10 (content 1): alice's record,
    // made on it, shows it came before both writes, so the deployer's names neither it nor
    // anything but his own write, which the watch shows next.
    let mut h = restarted_over_a_and_b();
    h.input(admission(
        Operation::Update,
        "alice",
        Some(cm("a", "2", 12)),
        Some(cm("a", "1", 10)),
    ));
    h.input(admission(
        Operation::Update,
        "deployer",
        Some(cm("a", "1", 14)),
        Some(cm("a", "2", 12)),
    ));
    relist(&mut h, vec![cm("a", "1", 10), cm("b", "1", 11)]);
    h.input(apply(cm("a", "2", 12)));
    h.input(apply(cm("a", "1", 14)));
    let pushed = h.flush_and_push();
    assert_eq!(
        subjects(&pushed),
        [
            "alice [UPDATE] v1/configmaps/team-a/a",
            "deployer [UPDATE] v1/configmaps/team-a/a"
        ]
    );
}

#[test]
fn a_creation_record_names_nobody_for_a_listed_version_later_writes_made() {
    // alice created a with content 1 and carol changed it to 2; the last core pushed both. Then
    // the deployer changed it back to 1, and the core went before it saw that. Handed again:
    // alice's creation (its second admission, never used) and the deployer's update. The list
    // shows content 1: the deployer's record, made on carol's version, shows the object had a
    // version before the listed one, so the listed one is no creation, and alice is not named.
    let mut h = restarted_over(vec![cm("a", "1", 10), cm("a", "2", 12)]);
    h.input(admission(
        Operation::Create,
        "alice",
        Some(cm("a", "1", 10)),
        None,
    ));
    h.input(admission(
        Operation::Update,
        "deployer",
        Some(cm("a", "1", 14)),
        Some(cm("a", "2", 12)),
    ));
    relist(&mut h, vec![cm("a", "1", 14)]);
    let pushed = h.flush_and_push();
    assert_eq!(
        subjects(&pushed),
        ["deployer [UPDATE] v1/configmaps/team-a/a"]
    );
}

#[test]
fn a_creation_admitted_again_after_the_watch_showed_it_is_settled_at_once() {
    use gitops_reverser_core::admission::record_id;
    // The webhook was called twice for alice's creation, the second time after the watch showed
    // it. An object is created once: the second record explains nothing still to come, and a
    // runtime that kept it would hand it to its next core, which would name alice for the
    // listed object whatever happened to it since.
    let mut h = seeded();
    let first = named_request(Operation::Create, "alice", cm("a", "1", 10), None);
    h.input(Input::Admission(first));
    h.input(apply(cm("a", "1", 10)));
    let again = AdmissionRequest {
        uid: "req-alice-again".into(),
        ..named_request(Operation::Create, "alice", cm("a", "1", 10), None)
    };
    h.input(Input::Admission(again.clone()));
    assert_eq!(h.core.take_settled_records(), [record_id(&again)]);
}

#[test]
fn a_record_made_on_a_version_the_watch_shows_replaced_is_settled() {
    use gitops_reverser_core::admission::record_id;
    // The deployer's update of a from version 10 was refused after admission; bob's, from the
    // same version, made version 12. The deployer's record can explain nothing any more: kept, a
    // runtime would hand it to its next core, which cannot tell it is stale, and it would name
    // the deployer for a later write of the same content whose own record was missed.
    let mut h = seeded();
    h.input(apply(cm("a", "1", 10)));
    let refused = named_request(
        Operation::Update,
        "deployer",
        cm("a", "2", 11),
        Some(cm("a", "1", 10)),
    );
    h.input(Input::Admission(refused.clone()));
    h.input(admission(
        Operation::Update,
        "bob",
        Some(cm("a", "3", 12)),
        Some(cm("a", "1", 10)),
    ));
    assert_eq!(h.core.take_settled_records(), Vec::<u64>::new());
    h.input(apply(cm("a", "3", 12)));
    assert_eq!(h.core.take_settled_records(), [record_id(&refused)]);
}

#[test]
fn a_handed_record_that_came_before_the_one_explaining_the_listed_version_is_settled() {
    use gitops_reverser_core::admission::record_id;
    // Handed after a restart: the deployer's update of a, made on version 10, then carol's,
    // made on version 12. The list shows carol's write (version 14): her record explains it, so
    // version 12 came after 10, and the deployer's write, whatever it made, is history. Kept, it
    // would be handed again at the next restart and name him for a later write of his content.
    let mut h = restarted_over_a_and_b();
    let deployer = named_request(
        Operation::Update,
        "deployer",
        cm("a", "3", 12),
        Some(cm("a", "1", 10)),
    );
    h.input(Input::Admission(deployer.clone()));
    h.input(admission(
        Operation::Update,
        "carol",
        Some(cm("a", "2", 14)),
        Some(cm("a", "3", 12)),
    ));
    relist(&mut h, vec![cm("a", "2", 14), cm("b", "1", 11)]);
    assert!(
        h.core
            .take_settled_records()
            .contains(&record_id(&deployer)),
        "the deployer's record is stale"
    );
    let pushed = h.flush_and_push();
    assert_eq!(subjects(&pushed), ["carol [UPDATE] v1/configmaps/team-a/a"]);
}

#[test]
fn a_handed_record_whose_change_is_already_committed_is_settled_and_names_nobody_later() {
    use gitops_reverser_core::admission::record_id;
    // The last core pushed a (content 1) and b, then went before its window forgot alice's
    // record: handed again, it joins the listed a, whose file the repository already holds.
    let mut h = restarted_over_a_and_b();
    let alice = named_request(Operation::Create, "alice", cm("a", "1", 10), None);
    h.input(Input::Admission(alice.clone()));
    relist(&mut h, vec![cm("a", "1", 10), cm("b", "1", 11)]);
    let pushed = h.flush_and_push();
    assert!(pushed.is_empty(), "{:?}", subjects(&pushed));
    assert!(
        h.core.take_settled_records().contains(&record_id(&alice)),
        "the change the record names needs no commit: no later core may use it"
    );
}

#[test]
fn a_record_is_settled_once_the_commit_it_named_goes_out_or_once_it_is_dropped_as_late() {
    use gitops_reverser_core::admission::record_id;
    let mut h = seeded();
    let alice = named_request(Operation::Create, "alice", cm("a", "1", 10), None);
    h.input(Input::Admission(alice.clone()));
    h.input(apply(cm("a", "1", 10)));
    assert_eq!(
        h.core.take_settled_records(),
        Vec::<u64>::new(),
        "not pushed yet"
    );
    h.flush_and_push();
    assert_eq!(h.core.take_settled_records(), [record_id(&alice)]);
    // bob's creation of b is seen before his record: the record comes late, and is settled at once.
    h.input(apply(cm("b", "1", 11)));
    let bob = named_request(Operation::Create, "bob", cm("b", "1", 11), None);
    h.input(Input::Admission(bob.clone()));
    assert_eq!(h.core.take_settled_records(), [record_id(&bob)]);
}
