//! Kubernetes label selectors (`matchLabels` and `matchExpressions`), compiled once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A label selector as written in a custom resource.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based requirement.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` and `NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// Why a selector was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SelectorError {
    /// The operator is not one of the four Kubernetes knows.
    #[error("matchExpressions key `{key}`: unknown operator `{operator}`; use In, NotIn, Exists or DoesNotExist")]
    UnknownOperator {
        /// The requirement's key.
        key: String,
        /// The refused operator.
        operator: String,
    },
    /// `In`/`NotIn` without values, or `Exists`/`DoesNotExist` with values.
    #[error("matchExpressions key `{key}`: operator `{operator}` {problem}")]
    BadValues {
        /// The requirement's key.
        key: String,
        /// The operator.
        operator: String,
        /// What is wrong with the values.
        problem: &'static str,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A validated selector, ready to match label maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Validates and compiles a selector; an empty selector matches everything.
    pub fn compile(sel: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements: Vec<Requirement> = sel
            .match_labels
            .iter()
            .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
            .collect();
        for r in &sel.match_expressions {
            let needs_values = matches!(r.operator.as_str(), "In" | "NotIn");
            let bad = |problem| SelectorError::BadValues {
                key: r.key.clone(),
                operator: r.operator.clone(),
                problem,
            };
            if needs_values && r.values.is_empty() {
                return Err(bad("needs at least one value"));
            }
            if !needs_values
                && !r.values.is_empty()
                && matches!(r.operator.as_str(), "Exists" | "DoesNotExist")
            {
                return Err(bad("takes no values"));
            }
            requirements.push(match r.operator.as_str() {
                "In" => Requirement::In(r.key.clone(), r.values.clone()),
                "NotIn" => Requirement::NotIn(r.key.clone(), r.values.clone()),
                "Exists" => Requirement::Exists(r.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(r.key.clone()),
                _ => {
                    return Err(SelectorError::UnknownOperator {
                        key: r.key.clone(),
                        operator: r.operator.clone(),
                    })
                }
            });
        }
        Ok(Self { requirements })
    }

    /// Whether a label set satisfies every requirement; `label` looks one label up.
    pub fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::DoesNotExist(k) => label(k).is_none(),
        })
    }

    /// Whether a label map satisfies the selector.
    pub fn matches_map(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches(|k| labels.get(k).map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(json: &str) -> Selector {
        Selector::compile(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(sel("{}").matches_map(&labels(&[])));
    }

    #[test]
    fn match_labels_requires_exact_values() {
        let s = sel(r#"{"matchLabels": {"app": "shop"}}"#);
        assert!(s.matches_map(&labels(&[("app", "shop"), ("x", "y")])));
        assert!(!s.matches_map(&labels(&[("app", "other")])));
        assert!(!s.matches_map(&labels(&[])));
    }

    #[test]
    fn match_expressions_follow_kubernetes_semantics() {
        let s = sel(
            r#"{"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "env", "operator": "NotIn", "values": ["prod"]}, {"key": "team", "operator": "Exists"},
            {"key": "skip", "operator": "DoesNotExist"}]}"#,
        );
        assert!(
            s.matches_map(&labels(&[("tier", "a"), ("team", "x")])),
            "NotIn holds when the label is absent"
        );
        assert!(!s.matches_map(&labels(&[("tier", "c"), ("team", "x")])));
        assert!(!s.matches_map(&labels(&[("tier", "a"), ("team", "x"), ("env", "prod")])));
        assert!(!s.matches_map(&labels(&[("tier", "a")])));
        assert!(!s.matches_map(&labels(&[("tier", "a"), ("team", "x"), ("skip", "")])));
    }

    #[test]
    fn invalid_selectors_are_refused_with_a_reason() {
        let bad_op = serde_json::from_str(
            r#"{"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}"#,
        )
        .unwrap();
        assert!(matches!(
            Selector::compile(&bad_op),
            Err(SelectorError::UnknownOperator { .. })
        ));
        let no_values =
            serde_json::from_str(r#"{"matchExpressions": [{"key": "a", "operator": "In"}]}"#)
                .unwrap();
        let err = Selector::compile(&no_values).unwrap_err();
        assert!(
            err.to_string().contains("needs at least one value"),
            "{err}"
        );
        for op in ["Exists", "DoesNotExist"] {
            let with_values = serde_json::from_str(&format!(
                r#"{{"matchExpressions": [{{"key": "a", "operator": "{op}", "values": ["x"]}}]}}"#
            ))
            .unwrap();
            let err = Selector::compile(&with_values).unwrap_err();
            assert!(err.to_string().contains("takes no values"), "{op}: {err}");
        }
    }
}
