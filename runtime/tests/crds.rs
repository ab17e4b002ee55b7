//! The committed CRDs (`deploy/crds/`) are what the code generates, and their schema's patterns
//! mean what the core checks. Regenerate with `gitops-reverser crds --out-dir deploy/crds`.

use std::path::Path;

use gitops_reverser_core::schema::{BASE_FOLDER_PATTERN, DURATION_PATTERN};
use gitops_reverser_runtime::crd;

#[test]
fn the_committed_crds_equal_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    for generated in crd::all() {
        let file = dir.join(crd::file_name(&generated));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `gitops-reverser crds --out-dir deploy/crds`",
                file.display()
            )
        });
        let committed: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        let generated = serde_json::to_value(&generated).unwrap();
        assert!(
            committed == generated,
            "{} differs from the generated CRD; run `gitops-reverser crds --out-dir deploy/crds`",
            file.display()
        );
    }
}

#[test]
fn the_crds_carry_the_validation_a_1_20_server_enforces() {
    let grc = serde_json::to_value(&crd::all()[0]).unwrap();
    let version = &grc["spec"]["versions"][0];
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    let push = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["push"]
        ["properties"];
    assert_eq!(push["maxCommits"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(push["interval"]["pattern"], DURATION_PATTERN);
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Ready",
            "Reason",
            "Branches",
            "Push Problem",
            "Last Push",
            "Age"
        ]
    );
    let wr = serde_json::to_value(&crd::all()[1]).unwrap();
    let spec =
        &wr["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["baseFolder"]["pattern"], BASE_FOLDER_PATTERN);
    assert!(
        !serde_json::to_string(&wr)
            .unwrap()
            .contains("x-kubernetes-validations"),
        "no CEL: a 1.20 server does not enforce it"
    );
}

#[test]
fn the_base_folder_pattern_refuses_only_what_the_core_refuses() {
    let re = regex::Regex::new(BASE_FOLDER_PATTERN).unwrap();
    for ok in [
        "",
        "clusters/prod",
        "clusters/prod/",
        ".hidden/x",
        "..x",
        "a.b/c..d",
    ] {
        assert!(re.is_match(ok), "pattern refuses {ok:?}");
        assert!(
            gitops_reverser_core::validate_base_folder(ok).is_ok(),
            "core refuses {ok:?}"
        );
    }
    for bad in ["/abs", "a//b", "a/../b", "..", ".", "./a", "a/."] {
        assert!(!re.is_match(bad), "pattern accepts {bad:?}");
        assert!(
            gitops_reverser_core::validate_base_folder(bad).is_err(),
            "core accepts {bad:?}"
        );
    }
}

#[test]
fn the_duration_pattern_accepts_what_the_core_parses() {
    let re = regex::Regex::new(DURATION_PATTERN).unwrap();
    for ok in ["1s", "1m", "1h30m", "500ms", "2h"] {
        assert!(re.is_match(ok), "{ok}");
        assert!(
            gitops_reverser_core::config::parse_duration_ms(ok).is_some(),
            "{ok}"
        );
    }
    for bad in ["", "1", "m", "1 m", "-1s", "1d", "1.5s"] {
        assert!(!re.is_match(bad), "{bad}");
        assert!(
            gitops_reverser_core::config::parse_duration_ms(bad).is_none(),
            "{bad}"
        );
    }
}
