use super::*;

fn repo(yaml_json: &str) -> GitRepoConfigSpec {
    serde_json::from_str(yaml_json).unwrap()
}

#[test]
fn the_originals_example_is_accepted() {
    let spec = repo(
        r#"{"repoURL": "https://github.com/org/repo", "allowedBranches": ["main"],
        "secretRef": {"name": "my-repo-credentials"}, "push": {"interval": "1m", "maxCommits": 20}}"#,
    );
    let s = validate_repo(&spec, false).unwrap();
    assert_eq!((s.push_interval_ms, s.max_commits), (60_000, 20));
    assert_eq!(s.secret_name.as_deref(), Some("my-repo-credentials"));
    let rule: WatchRuleSpec = serde_json::from_str(r#"{"gitRepoConfigRef": "my-repo", "branch": "main",
        "baseFolder": "clusters/prod", "resources": [{"group": "", "version": "v1", "resource": "configmaps"}],
        "operations": ["CREATE", "UPDATE", "DELETE"], "objectSelector": {"matchLabels": {"app": "x"}}}"#).unwrap();
    assert_eq!(rule.git_repo_config_ref, RepoRef::Name("my-repo".into()));
}

#[test]
fn all_url_forms_are_accepted_and_junk_is_not() {
    for url in [
        "https://h/o/r",
        "ssh://git@h/o/r.git",
        "git@h:o/r.git",
        "file:///tmp/r",
        "git://h/r",
    ] {
        let spec = GitRepoConfigSpec {
            repo_url: url.into(),
            allowed_branches: vec!["main".into()],
            ..Default::default()
        };
        assert!(validate_repo(&spec, true).is_ok(), "{url}");
    }
    let spec = GitRepoConfigSpec {
        repo_url: "ftp://x".into(),
        allowed_branches: vec!["main".into()],
        ..Default::default()
    };
    assert_eq!(
        validate_repo(&spec, true).unwrap_err().reason,
        "InvalidRepoURL"
    );
}

#[test]
fn a_repo_without_branches_is_not_ready() {
    let c = validate_repo(&repo(r#"{"repoURL": "https://h/r"}"#), false).unwrap_err();
    assert_eq!(c.reason, "NoBranches");
    assert!(c.message.contains("allowedBranches"));
}

#[test]
fn a_file_url_is_refused_unless_allowed_and_credentials_never_travel_in_plaintext() {
    for url in ["file:///var/lib/gitops-reverser", "file:///etc"] {
        let spec = repo(&format!(
            r#"{{"repoURL": "{url}", "allowedBranches": ["main"]}}"#
        ));
        let c = validate_repo(&spec, false).unwrap_err();
        assert_eq!(c.reason, "FileRemoteRefused", "{url}");
        assert!(c.message.contains("--allow-file-remotes"), "{}", c.message);
    }
    // Other spellings are not URLs the operator takes at all.
    for url in ["FILE:///etc", "file:relative", "/var/lib/gitops-reverser"] {
        let spec = repo(&format!(
            r#"{{"repoURL": "{url}", "allowedBranches": ["main"]}}"#
        ));
        assert!(validate_repo(&spec, false).is_err(), "{url}");
    }
    let spec = repo(r#"{"repoURL": "file:///srv/r.git", "allowedBranches": ["main"]}"#);
    assert!(validate_repo(&spec, true).is_ok());

    for url in ["http://h/r.git", "git://h/r.git"] {
        let with_secret = repo(&format!(
            r#"{{"repoURL": "{url}", "allowedBranches": ["main"], "secretRef": {{"name": "creds"}}}}"#
        ));
        let c = validate_repo(&with_secret, true).unwrap_err();
        assert_eq!(c.reason, "PlaintextCredentials", "{url}");
        let without = repo(&format!(
            r#"{{"repoURL": "{url}", "allowedBranches": ["main"]}}"#
        ));
        assert!(
            validate_repo(&without, false).is_ok(),
            "{url} without credentials"
        );
    }
    for url in ["https://h/r.git", "ssh://git@h/r.git", "git@h:r.git"] {
        let with_secret = repo(&format!(
            r#"{{"repoURL": "{url}", "allowedBranches": ["main"], "secretRef": {{"name": "creds"}}}}"#
        ));
        assert!(validate_repo(&with_secret, false).is_ok(), "{url}");
    }
}

#[test]
fn bad_push_settings_are_refused() {
    let c = validate_repo(&repo(r#"{"repoURL": "https://h/r", "allowedBranches": ["main"], "push": {"interval": "soon"}}"#), false).unwrap_err();
    assert_eq!(c.reason, "InvalidPushInterval");
    let c = validate_repo(
        &repo(
            r#"{"repoURL": "https://h/r", "allowedBranches": ["main"], "push": {"maxCommits": 0}}"#,
        ),
        false,
    )
    .unwrap_err();
    assert_eq!(c.reason, "InvalidMaxCommits");
    let c = validate_repo(
        &repo(r#"{"repoURL": "https://h/r", "allowedBranches": ["bad name"]}"#),
        false,
    )
    .unwrap_err();
    assert_eq!(c.reason, "InvalidBranch");
}

#[test]
fn a_push_interval_outside_one_second_to_a_day_is_refused() {
    let with = |interval: &str| {
        validate_repo(
            &repo(&format!(
                r#"{{"repoURL": "https://h/r", "allowedBranches": ["main"], "push": {{"interval": "{interval}"}}}}"#
            )),
            false,
        )
    };
    for ok in ["1s", "24h"] {
        assert!(with(ok).is_ok(), "{ok}");
    }
    for bad in ["999ms", "24h1s"] {
        let c = with(bad).unwrap_err();
        assert_eq!(c.reason, "InvalidPushInterval", "{bad}");
        assert!(c.message.contains("between 1s and 24h"), "{}", c.message);
    }
}

#[test]
fn branch_names_follow_git_check_ref_format() {
    for ok in ["main", "release/1.2", "feature-x_y"] {
        assert!(valid_branch(ok), "{ok}");
    }
    for bad in [
        "",
        "a b",
        "a..b",
        "-x",
        "x.lock",
        "a//b",
        "@",
        "tab\there",
        "bell\u{7}",
        "del\u{7f}",
    ] {
        assert!(!valid_branch(bad), "{bad:?}");
    }
}

#[test]
fn a_resource_selector_needs_both_a_version_and_a_resource() {
    let sel = |version: &str, resource: &str| ResourceSelector {
        group: String::new(),
        version: version.into(),
        resource: resource.into(),
    };
    assert!(validate_resources(&[sel("v1", "configmaps")]).is_ok());
    for (v, r) in [("", "configmaps"), ("v1", ""), ("", "")] {
        let c = validate_resources(&[sel(v, r)]).unwrap_err();
        assert_eq!(c.reason, "InvalidResource", "{v:?} {r:?}");
    }
}

#[test]
fn a_resource_names_its_kind_and_name_in_messages() {
    let n = NamespacedName::new("team-a", "repo");
    assert_eq!(
        CrRef::GitRepoConfig(n.clone()).to_string(),
        "GitRepoConfig team-a/repo"
    );
    assert_eq!(CrRef::WatchRule(n).to_string(), "WatchRule team-a/repo");
    assert_eq!(
        CrRef::ClusterWatchRule("all".into()).to_string(),
        "ClusterWatchRule all"
    );
}

#[test]
fn durations_parse_like_go() {
    assert_eq!(parse_duration_ms("1m"), Some(60_000));
    assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
    assert_eq!(parse_duration_ms("500ms"), Some(500));
    assert_eq!(parse_duration_ms("10"), None);
    assert_eq!(parse_duration_ms("m"), None);
}

#[test]
fn destination_checks_name_what_to_fix() {
    let name = NamespacedName::new("team-a", "my-repo");
    let ok = validate_repo(
        &repo(r#"{"repoURL": "https://h/r", "allowedBranches": ["main", "dev"]}"#),
        false,
    );
    assert_eq!(
        validate_destination(None, &name, None, None)
            .unwrap_err()
            .reason,
        "GitRepoConfigNotFound"
    );
    assert_eq!(
        validate_destination(Some(ok.as_ref()), &name, None, None).unwrap(),
        "main",
        "first allowed branch by default"
    );
    assert_eq!(
        validate_destination(Some(ok.as_ref()), &name, Some("prod"), None)
            .unwrap_err()
            .reason,
        "BranchNotAllowed"
    );
    assert_eq!(
        validate_destination(Some(ok.as_ref()), &name, Some("dev"), Some("/abs"))
            .unwrap_err()
            .reason,
        "InvalidBaseFolder"
    );
    assert_eq!(
        validate_destination(Some(ok.as_ref()), &name, Some("dev"), Some("a/../b"))
            .unwrap_err()
            .reason,
        "InvalidBaseFolder"
    );
    let broken = validate_repo(&repo(r#"{"repoURL": "https://h/r"}"#), false);
    assert_eq!(
        validate_destination(Some(broken.as_ref()), &name, None, None)
            .unwrap_err()
            .reason,
        "GitRepoConfigNotReady"
    );
}

#[test]
fn a_watch_rule_cannot_use_another_namespaces_repo() {
    let r: RepoRef = serde_json::from_str(r#"{"name": "repo", "namespace": "team-b"}"#).unwrap();
    assert_eq!(
        resolve_watch_rule_repo("team-a", &r).unwrap_err().reason,
        "CrossNamespaceReference"
    );
    let same: RepoRef = serde_json::from_str(r#"{"name": "repo", "namespace": "team-a"}"#).unwrap();
    assert_eq!(
        resolve_watch_rule_repo("team-a", &same).unwrap(),
        NamespacedName::new("team-a", "repo")
    );
}

#[test]
fn operations_parse_with_wildcards_and_refuse_unknown_ones() {
    assert_eq!(OpSet::parse(&[]).unwrap(), OpSet::ALL);
    assert_eq!(OpSet::parse(&["*".into()]).unwrap(), OpSet::ALL);
    let s = OpSet::parse(&["CREATE".into()]).unwrap();
    assert!(s.contains(Operation::Create) && !s.contains(Operation::Delete));
    assert_eq!(
        OpSet::parse(&["PATCH".into()]).unwrap_err().reason,
        "InvalidOperation"
    );
}
