use super::*;

fn write(path: &str, hash: u64) -> PendingWrite {
    let content = Some(Content {
        hash,
        file: FileBody::Yaml(format!("{{\"h\":{hash}}}").into_bytes().into()),
        bytes: 100,
    });
    PendingWrite {
        path: path.into(),
        path_key: crate::live::key128(path),
        content,
    }
}

fn event(q: &mut Queue, user: &str, path: &str, hash: u64) {
    let kind = CommitKind::Event {
        op: Operation::Update,
        identifier: path.into(),
    };
    q.push_event(0, 0, Some(user.into()), None, kind, write(path, hash));
}

#[test]
fn latest_reports_the_newest_unpushed_content_of_a_path() {
    let mut q = Queue::default();
    event(&mut q, "a", "p", 1);
    event(&mut q, "b", "p", 2);
    assert_eq!(q.latest(crate::live::key128("p")), Some(Some(2)));
    q.start_push();
    assert_eq!(
        q.latest(crate::live::key128("p")),
        Some(Some(2)),
        "in flight still counts as pending"
    );
    q.push_landed();
    assert_eq!(q.latest(crate::live::key128("p")), None);
}

#[test]
fn a_failed_push_puts_its_commits_back_in_front_in_order() {
    let mut q = Queue::default();
    event(&mut q, "a", "p", 1);
    q.start_push();
    event(&mut q, "b", "q", 2);
    q.push_failed(5);
    let users: Vec<_> = q
        .start_push()
        .iter()
        .map(|c| c.author.as_deref().unwrap().to_owned())
        .collect();
    assert_eq!(users, ["a", "b"]);
}

#[test]
fn coalescing_keeps_the_latest_content_per_path_and_the_authors_of_what_survives() {
    let mut q = Queue::default();
    event(&mut q, "a", "p", 1);
    event(&mut q, "b", "q", 2);
    event(&mut q, "c", "p", 3);
    q.coalesce();
    let kept: Vec<(String, u64)> = q
        .start_push()
        .iter()
        .map(|c| {
            (
                c.author.as_deref().unwrap().to_owned(),
                c.writes[0].content.as_ref().unwrap().hash,
            )
        })
        .collect();
    assert_eq!(kept, [("b".to_string(), 2), ("c".to_string(), 3)]);
    assert_eq!(q.coalesced_total(), 1);
}

#[test]
fn a_queue_over_its_commit_limit_coalesces_instead_of_dropping() {
    let mut q = Queue::default();
    for i in 0..(PENDING_COMMITS_MAX + 1) {
        event(&mut q, "u", &format!("p{i}"), i as u64);
    }
    assert!(q.len() <= PENDING_COMMITS_MAX);
    let paths: HashSet<u128, KeyHash> = q.writes().map(|w| w.path_key).collect::<HashSet<_, _>>();
    assert_eq!(
        paths.len(),
        PENDING_COMMITS_MAX + 1,
        "every path's change is still there"
    );
}

#[test]
fn a_queue_exactly_at_its_commit_limit_does_not_coalesce() {
    let mut q = Queue::default();
    for i in 0..PENDING_COMMITS_MAX {
        event(&mut q, "u", &format!("p{}", i % 2), i as u64);
    }
    assert_eq!(q.coalesce_passes(), 0, "at the limit, not over it");
    assert_eq!(q.len(), PENDING_COMMITS_MAX, "every change its own commit");
    event(&mut q, "u", "p0", 0);
    assert_eq!(q.coalesce_passes(), 1);
    assert_eq!(q.len(), 2, "the newest write of each path is kept");
}

#[test]
fn a_queue_exactly_at_its_byte_limit_does_not_coalesce() {
    let big = |path: &str, hash: u64, bytes: usize| {
        let mut w = write(path, hash);
        w.content.as_mut().unwrap().bytes = bytes;
        w
    };
    let kind = |path: &str| CommitKind::Event {
        op: Operation::Update,
        identifier: path.into(),
    };
    let mut q = Queue::default();
    let half = PENDING_BYTES_MAX / 2;
    q.push_event(0, 0, Some("u".into()), None, kind("p"), big("p", 1, half));
    let rest = PENDING_BYTES_MAX - half;
    q.push_event(0, 0, Some("u".into()), None, kind("p"), big("p", 2, rest));
    assert_eq!(q.bytes(), PENDING_BYTES_MAX);
    assert_eq!(q.coalesce_passes(), 0, "at the limit, not over it");
    q.push_event(0, 0, Some("u".into()), None, kind("p"), big("p", 3, 1));
    assert_eq!(q.coalesce_passes(), 1);
    assert_eq!(q.len(), 1, "only the newest write of p is kept");
}

#[test]
fn a_resync_write_that_replaces_another_counts_its_bytes_once() {
    let mut q = Queue::default();
    q.push_resync(0, 0, "f", write("f/p", 1));
    q.push_resync(0, 0, "f", write("f/p", 2));
    assert_eq!(q.bytes(), 100, "the replaced write's bytes are gone");
    assert_eq!(q.writes().count(), 1);
    q.start_push();
    q.push_landed();
    assert_eq!(
        q.latest(crate::live::key128("f/p")),
        None,
        "nothing of the path is left pending"
    );
}

#[test]
fn a_write_only_in_the_open_resync_commit_can_be_dropped_from_it() {
    let mut q = Queue::default();
    let p = crate::live::key128("f/p");
    q.push_resync(0, 0, "f", write("f/p", 1));
    q.push_resync(0, 0, "f", write("f/q", 2));
    assert!(q.only_in_open_resync(p, "f"));
    assert!(!q.only_in_open_resync(p, "g"), "another folder's commit");
    q.drop_from_open_resync(p);
    assert_eq!(q.latest(p), None);
    assert_eq!((q.len(), q.bytes()), (1, 100));
    q.drop_from_open_resync(crate::live::key128("f/q"));
    assert!(q.is_empty(), "an emptied commit goes");
    // Behind an event commit of the path, the open resync commit is not its only write.
    event(&mut q, "u", "f/p", 1);
    q.push_resync(0, 0, "f", write("f/p", 2));
    assert!(!q.only_in_open_resync(p, "f"));
}

#[test]
fn a_write_in_the_open_resync_commit_behind_earlier_ones_is_judged_against_the_last_of_them() {
    let mut q = Queue::default();
    let p = crate::live::key128("f/p");
    q.push_resync(0, 0, "f", write("f/p", 1));
    assert_eq!(q.before_open_resync(p, "f"), None, "its only write");
    q.start_push();
    event(&mut q, "u", "f/p", 2);
    assert_eq!(q.before_open_resync(p, "f"), None, "not in a resync commit");
    q.push_resync(0, 0, "f", write("f/p", 3));
    q.push_resync(0, 0, "f", write("f/q", 4));
    assert_eq!(q.before_open_resync(p, "f"), Some(Some(2)));
    assert_eq!(
        q.before_open_resync(p, "g"),
        None,
        "another folder's commit"
    );
    // Dropped from the open commit, the event's write is the path's newest again, and the one in
    // flight before it counts too.
    q.drop_from_open_resync(p);
    assert_eq!(q.latest(p), Some(Some(2)));
    assert_eq!(q.len(), 2);
    q.push_failed(5);
    let of_p = q
        .start_push()
        .iter()
        .filter(|c| c.writes.iter().any(|w| w.path_key == p))
        .count();
    assert_eq!(of_p, 2, "the resync of 1 and the event's 2");
    q.push_landed();
    assert_eq!(q.latest(p), None);
}

#[test]
fn a_write_equal_to_what_precedes_it_is_dropped_and_later_changes_stay() {
    // The repository holds p = 1 and q = 3.
    let repo = |w: &PendingWrite| {
        let held = if w.path_key == crate::live::key128("p") {
            1
        } else {
            3
        };
        w.content.as_ref().map(|c| c.hash) == Some(held)
    };
    let mut q = Queue::default();
    event(&mut q, "a", "p", 1);
    event(&mut q, "b", "p", 2);
    event(&mut q, "c", "q", 3);
    assert_eq!(q.drop_redundant(repo), 2, "p = 1 and q = 3 change nothing");
    assert_eq!(q.len(), 1);
    assert_eq!(q.latest(crate::live::key128("p")), Some(Some(2)));
    assert_eq!(q.latest(crate::live::key128("q")), None);
    assert_eq!(q.bytes(), 100);
}

#[test]
fn dropping_writes_removes_emptied_commits_and_reindexes() {
    let mut q = Queue::default();
    q.push_resync(0, 0, "a", write("a/p", 1));
    event(&mut q, "alice", "a/q", 2);
    event(&mut q, "bob", "b/q", 3);
    assert_eq!(q.drop_writes(|w| w.path.starts_with("a/")), 2);
    assert_eq!(q.len(), 1);
    assert_eq!(q.bytes(), 100);
    assert_eq!(q.latest(crate::live::key128("a/q")), None);
    assert_eq!(q.latest(crate::live::key128("b/q")), Some(Some(3)));
}

#[test]
fn a_write_back_to_the_repository_content_stays_after_a_different_one() {
    // The repository holds p = 2; pending p = 1 then p = 2: both are real changes in order.
    let repo = |w: &PendingWrite| w.content.as_ref().map(|c| c.hash) == Some(2);
    let mut q = Queue::default();
    event(&mut q, "a", "p", 1);
    event(&mut q, "b", "p", 2);
    assert_eq!(q.drop_redundant(repo), 0);
    assert_eq!(q.len(), 2);
}

#[test]
fn the_resync_commit_collects_writes_and_replaces_repeated_paths() {
    let mut q = Queue::default();
    q.push_resync(0, 0, "f", write("p", 1));
    q.push_resync(0, 0, "f", write("q", 2));
    q.push_resync(0, 0, "f", write("p", 3));
    assert_eq!(q.len(), 1);
    assert_eq!(q.bytes(), 200);
    assert_eq!(q.latest(crate::live::key128("p")), Some(Some(3)));
}

fn big_write(path: &str, hash: u64, bytes: usize) -> PendingWrite {
    let mut w = write(path, hash);
    w.content.as_mut().unwrap().bytes = bytes;
    w
}

#[test]
fn a_resync_of_distinct_paths_past_the_byte_bound_coalesces_only_when_the_bytes_double() {
    // 39,999 distinct files of 4 KiB: 160 MiB, over the bound from about 16,000 on, and no
    // pass can shrink the queue. Each pass walks the whole queue, so one per write would be
    // quadratic (the seed of a 100,000-object folder took minutes).
    let mut q = Queue::default();
    for i in 0..39_999u64 {
        q.push_resync(0, 0, "f", big_write(&format!("f/{i}"), i, 4096));
    }
    assert_eq!(
        q.len(),
        20,
        "resync parts of 8 MiB (2,048 files of 4 KiB), the last one open"
    );
    assert_eq!(q.bytes(), 39_999 * 4096, "nothing dropped");
    assert!(
        (1..=3).contains(&q.coalesce_passes()),
        "{} passes: 64 MiB, then at 128 MiB",
        q.coalesce_passes()
    );
    // A path written again inside the open resync part replaces its earlier write.
    q.push_resync(0, 0, "f", big_write("f/39998", 99, 4096));
    assert_eq!(q.bytes(), 39_999 * 4096);
    assert_eq!(q.latest(crate::live::key128("f/39998")), Some(Some(99)));
    // One in a closed part is written again in the open one: the newer wins when both land.
    q.push_resync(0, 0, "f", big_write("f/7", 99, 4096));
    assert_eq!(q.bytes(), 40_000 * 4096);
    assert_eq!(q.latest(crate::live::key128("f/7")), Some(Some(99)));
}

fn resync_part_sizes(q: &Queue) -> Vec<usize> {
    q.commits.iter().map(|c| c.writes.len()).collect()
}

#[test]
fn a_resync_is_cut_into_parts_by_files_and_by_bytes() {
    let bounds = PushBounds {
        commits_max: 100,
        bytes_max: 1_000,
        part_writes_max: 3,
    };
    let mut q = Queue::new(bounds);
    for i in 0..7 {
        q.push_resync(0, 0, "f", write(&format!("f/{i}"), i));
    }
    assert_eq!(resync_part_sizes(&q), [3, 3, 1], "at most 3 files a part");
    let mut q = Queue::new(PushBounds {
        part_writes_max: 100,
        ..bounds
    });
    for i in 0..7 {
        q.push_resync(0, 0, "f", big_write(&format!("f/{i}"), i, 400));
    }
    assert_eq!(
        resync_part_sizes(&q),
        [3, 3, 1],
        "a part is closed once it holds 1,000 bytes or more"
    );
    assert!(
        q.commits
            .iter()
            .all(|c| c.kind == CommitKind::Resync { folder: "f".into() }),
        "every part is a resync commit of the folder"
    );
}

#[test]
fn a_push_takes_at_most_its_bounds_and_the_rest_is_due_at_once() {
    let mut q = Queue::new(PushBounds {
        commits_max: 3,
        bytes_max: 250,
        part_writes_max: 100,
    });
    let kind = |path: &str| CommitKind::Event {
        op: Operation::Update,
        identifier: path.into(),
    };
    for i in 0..4 {
        q.push_event(
            10,
            0,
            Some("u".into()),
            None,
            kind("p"),
            write(&format!("p{i}"), i),
        );
    }
    // Interval 60 s, 1,000 commits: only more than a push pending makes it due at once.
    assert_eq!(
        q.due_at_ms(1_000, 60_000),
        Some(10),
        "four commits pending, a push carries three"
    );
    assert_eq!(q.start_push().len(), 2, "250 bytes hold two writes of 100");
    assert_eq!(q.len(), 2);
    assert_eq!(q.bytes(), 200);
    assert_eq!(
        q.due_at_ms(1_000, 60_000),
        Some(10),
        "what a cut push left is due as soon as the branch is free"
    );
    q.push_landed();
    assert_eq!(q.start_push().len(), 2);
    q.push_landed();
    for i in 0..5 {
        q.push_event(
            20,
            0,
            Some("u".into()),
            None,
            kind("q"),
            big_write(&format!("q{i}"), i, 1),
        );
    }
    assert_eq!(q.start_push().len(), 3, "at most 3 commits");
    q.push_failed(30);
    assert_eq!(q.len(), 5, "a failed push's commits are back in front");
    q.start_push();
    q.push_landed();
    assert_eq!(q.start_push().len(), 2);
    q.push_landed();
    assert_eq!(q.due_at_ms(1_000, 60_000), None, "nothing left");
    q.push_event(40, 0, Some("u".into()), None, kind("r"), write("r", 1));
    assert_eq!(
        q.due_at_ms(1_000, 60_000),
        Some(60_040),
        "a new change waits for its interval again"
    );
    // A commit larger than the byte bound goes alone.
    q.push_event(
        40,
        0,
        Some("u".into()),
        None,
        kind("s"),
        big_write("s", 1, 10_000),
    );
    assert_eq!(q.start_push().len(), 1);
    q.push_landed();
    assert_eq!(q.start_push().len(), 1, "the large commit, alone");
}
