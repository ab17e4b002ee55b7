use super::*;

fn key(op: Operation, content: u64) -> CorrKey {
    CorrKey {
        ident: 7,
        op,
        content,
    }
}

fn rec(user: &str, base: Option<u64>) -> Record {
    Record {
        user: user.into(),
        base_rv: base,
        uid: None,
        content: 0,
        req: 0,
        seq: 0,
        exact_only: false,
    }
}

fn record(a: &mut Attributor, now: u64, key: CorrKey, r: Record) {
    a.record(
        now,
        key,
        Record {
            content: key.content,
            ..r
        },
        None,
    );
}

fn att() -> Attributor {
    Attributor::new(CorrelationLimits::default())
}

#[test]
fn create_joins_on_content_hash() {
    let mut a = att();
    record(&mut a, 0, key(Operation::Create, 1), rec("alice", None));
    assert_eq!(
        a.attribute(5, key(Operation::Create, 1), 0, 0, None, true),
        Attribution::Exact("alice".into())
    );
}

#[test]
fn a_creation_retires_the_create_records_that_came_before_its_own() {
    let mut a = att();
    // alice's create (content 1) was refused: bob's create (content 2) took the name.
    record(&mut a, 0, key(Operation::Create, 1), rec("alice", None));
    record(&mut a, 1, key(Operation::Create, 2), rec("bob", None));
    // carol's create (content 3) is admitted while bob's is still on its way.
    record(&mut a, 2, key(Operation::Create, 3), rec("carol", None));
    assert_eq!(
        a.attribute(3, key(Operation::Create, 2), 0, 0, None, true),
        Attribution::Exact("bob".into())
    );
    assert_eq!(a.counters().superseded_total, 1, "alice's, not carol's");
    // bob deletes; someone re-creates with alice's content and their webhook call is lost.
    assert_eq!(
        a.attribute(4, key(Operation::Create, 1), 0, 0, None, true),
        Attribution::Miss,
        "never alice"
    );
    assert_eq!(
        a.attribute(5, key(Operation::Create, 3), 0, 0, None, true),
        Attribution::Exact("carol".into())
    );
}

#[test]
fn a_late_admission_is_not_kept_for_someone_elses_identical_write() {
    let mut a = att();
    // The watch showed alice's create before her admission arrived.
    assert_eq!(
        a.attribute(0, key(Operation::Create, 1), 0, 0, None, true),
        Attribution::Miss
    );
    a.note_missed(0, key(Operation::Create, 1), None);
    record(&mut a, 5, key(Operation::Create, 1), rec("alice", None));
    assert_eq!(a.counters().late_skipped_total, 1);
    // bob deletes and re-creates the same content; his webhook call is lost.
    assert_eq!(
        a.attribute(9, key(Operation::Create, 1), 0, 0, None, true),
        Attribution::Miss,
        "never alice"
    );
}

#[test]
fn update_joins_only_the_write_of_its_base_version() {
    let mut a = att();
    // bob's write from base 10 was rejected downstream; alice then writes the same content from 10
    // without a webhook call reaching us. The watch event's base is 11 (after some other write).
    record(&mut a, 0, key(Operation::Update, 5), rec("bob", Some(10)));
    assert_eq!(
        a.attribute(1, key(Operation::Update, 5), 0, 0, Some(11), true),
        Attribution::Miss,
        "never bob"
    );
    // The watch showed 11 replaced (the core notes it after the join).
    a.note_replaced(1, 7, 11);
    // carol's write from the version that one left (12) joins exactly. (A record from 11
    // itself would be late now: the write from 11 has been seen.)
    record(&mut a, 2, key(Operation::Update, 5), rec("carol", Some(12)));
    assert_eq!(
        a.attribute(3, key(Operation::Update, 5), 0, 0, Some(12), true),
        Attribution::Exact("carol".into())
    );
    record(&mut a, 4, key(Operation::Update, 5), rec("dave", Some(11)));
    assert_eq!(
        a.counters().late_skipped_total,
        1,
        "made on a version seen replaced"
    );
}

#[test]
fn two_users_writing_the_same_from_the_same_base_name_neither() {
    let mut a = att();
    // The deployer's delete was refused after admission; bob's identical delete went through.
    record(
        &mut a,
        0,
        key(Operation::Delete, 5),
        rec("deployer", Some(3)),
    );
    record(&mut a, 1, key(Operation::Delete, 5), rec("bob", Some(3)));
    assert_eq!(
        a.attribute(2, key(Operation::Delete, 5), 0, 0, Some(3), true),
        Attribution::Ambiguous
    );
    assert_eq!(a.counters().ambiguous_total, 1);
    assert_eq!(a.store_size(), (0, 0), "both retired");
}

#[test]
fn uncertain_base_falls_back_to_a_single_candidate() {
    let mut a = att();
    record(&mut a, 0, key(Operation::Update, 5), rec("bob", Some(3)));
    assert_eq!(
        a.attribute(1, key(Operation::Update, 5), 0, 0, Some(9), false),
        Attribution::HashOnly("bob".into())
    );
}

#[test]
fn uncertain_base_with_two_candidates_is_a_miss() {
    let mut a = att();
    record(&mut a, 0, key(Operation::Update, 5), rec("bob", Some(3)));
    record(&mut a, 0, key(Operation::Update, 5), rec("alice", Some(4)));
    assert_eq!(
        a.attribute(1, key(Operation::Update, 5), 0, 0, Some(9), false),
        Attribution::Miss
    );
    assert_eq!(a.counters().miss_total, 1);
}

#[test]
fn a_stored_record_made_on_a_replaced_version_explains_nothing() {
    let mut a = att();
    record(&mut a, 0, key(Operation::Update, 5), rec("bob", Some(3)));
    a.note_replaced(1, 7, 3);
    assert_eq!(
        a.attribute(2, key(Operation::Update, 5), 0, 0, Some(9), false),
        Attribution::Miss,
        "bob's base is history: his write was seen, or refused"
    );
}

#[test]
fn a_record_made_on_the_current_version_is_kept_despite_a_note() {
    let mut a = att();
    a.note_missed(0, key(Operation::Update, 5), None);
    a.record(
        1,
        key(Operation::Update, 5),
        Record {
            content: 5,
            ..rec("bob", Some(4))
        },
        Some(4),
    );
    a.record(
        1,
        key(Operation::Update, 5),
        Record {
            content: 5,
            ..rec("carol", Some(2))
        },
        Some(4),
    );
    assert_eq!(
        a.attribute(2, key(Operation::Update, 5), 0, 0, Some(4), true),
        Attribution::Exact("bob".into())
    );
}

#[test]
fn a_record_that_may_be_late_joins_only_exactly() {
    // The watch showed content 5 without an author. carol's record of content 5 is made on
    // version 2, which the core has not seen: late for that change, or for a write from a
    // version still to come. It names no one on an uncertain base...
    let mut a = att();
    a.note_missed(0, key(Operation::Update, 5), None);
    let carol = Record {
        content: 5,
        ..rec("carol", Some(2))
    };
    a.record(1, key(Operation::Update, 5), carol.clone(), Some(4));
    assert_eq!(a.counters().late_skipped_total, 0);
    assert_eq!(
        a.attribute(2, key(Operation::Update, 5), 0, 0, Some(9), false),
        Attribution::Miss,
        "late for the missed change, it must not explain an identical one after a relist"
    );
    // ...but explains the write the watch shows made on version 2.
    a.record(3, key(Operation::Update, 5), carol, Some(4));
    assert_eq!(
        a.attribute(4, key(Operation::Update, 5), 0, 0, Some(2), true),
        Attribution::Exact("carol".into())
    );
}

#[test]
fn a_create_record_late_for_a_change_seen_without_one_is_dropped() {
    let mut a = att();
    a.note_missed(0, key(Operation::Create, 5), None);
    record(&mut a, 1, key(Operation::Create, 5), rec("carol", None));
    assert_eq!(a.counters().late_skipped_total, 1);
    assert_eq!(
        a.attribute(2, key(Operation::Create, 5), 0, 0, None, true),
        Attribution::Miss
    );
}

#[test]
fn records_expire_after_the_ttl() {
    let mut a = att();
    record(&mut a, 0, key(Operation::Create, 1), rec("alice", None));
    assert_eq!(
        a.attribute(60_000, key(Operation::Create, 1), 0, 0, None, true),
        Attribution::Miss
    );
}
