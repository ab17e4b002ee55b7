//! What an object's type adds to the common sanitization rules and to the defaults left out:
//! a leaf both [`crate::sanitize`] and [`crate::defaults`] read.

use crate::ids::Gvr;

/// What an object's type adds to the common rules. It comes from the GVR of the stream or the
/// admission request, never from the object's own `kind`/`apiVersion` text: the API server
/// leaves those out of list items, and an object's text is the cluster's to spell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TypeRules {
    /// Nothing beyond the common rules.
    #[default]
    Plain,
    /// A core `v1` Secret: every value redacted.
    Secret,
    /// A core `v1` Secret whose file is sealed ([`crate::seal`]): its values kept for the cipher.
    SealedSecret,
    /// A core Service: cluster-allocated `spec` fields removed.
    Service,
    /// A core Pod: `spec.nodeName` removed.
    Pod,
    /// A core PersistentVolumeClaim: `spec.volumeName` and `spec.volumeMode` removed.
    PersistentVolumeClaim,
    /// A core PodTemplate: the template's `metadata.creationTimestamp` removed.
    PodTemplate,
    /// A CronJob: the same under `spec.jobTemplate.spec.template`.
    CronJob,
    /// The built-in workloads, each the same under `spec.template` (and each with its own
    /// defaults, [`crate::defaults`]).
    Deployment,
    /// An `apps` StatefulSet.
    StatefulSet,
    /// An `apps` DaemonSet.
    DaemonSet,
    /// An `apps` ReplicaSet.
    ReplicaSet,
    /// A core ReplicationController.
    ReplicationController,
    /// A `batch` Job.
    Job,
    /// The types below differ from [`TypeRules::Plain`] only in their defaults.
    /// A core Namespace.
    Namespace,
    /// A core PersistentVolume.
    PersistentVolume,
    /// A `networking.k8s.io` NetworkPolicy.
    NetworkPolicy,
    /// An Ingress of a `v1beta1` version (whose paths' `pathType` has a default).
    IngressBeta,
    /// An `rbac.authorization.k8s.io` RoleBinding or ClusterRoleBinding.
    RoleBinding,
    /// An `autoscaling` HorizontalPodAutoscaler.
    HorizontalPodAutoscaler,
    /// A `storage.k8s.io` StorageClass.
    StorageClass,
    /// A `scheduling.k8s.io` PriorityClass.
    PriorityClass,
}

impl TypeRules {
    /// The rules of objects of `gvr`.
    pub fn of(gvr: &Gvr) -> Self {
        let (group, resource) = (gvr.group.as_str(), gvr.resource.as_str());
        match (group, resource) {
            ("", "secrets") => TypeRules::Secret,
            ("", "services") => TypeRules::Service,
            ("", "pods") => TypeRules::Pod,
            ("", "persistentvolumeclaims") => TypeRules::PersistentVolumeClaim,
            ("", "podtemplates") => TypeRules::PodTemplate,
            ("", "replicationcontrollers") => TypeRules::ReplicationController,
            ("", "namespaces") => TypeRules::Namespace,
            ("", "persistentvolumes") => TypeRules::PersistentVolume,
            ("apps", "deployments") => TypeRules::Deployment,
            ("apps", "statefulsets") => TypeRules::StatefulSet,
            ("apps", "daemonsets") => TypeRules::DaemonSet,
            ("apps", "replicasets") => TypeRules::ReplicaSet,
            ("batch", "jobs") => TypeRules::Job,
            ("batch", "cronjobs") => TypeRules::CronJob,
            ("networking.k8s.io", "networkpolicies") => TypeRules::NetworkPolicy,
            ("networking.k8s.io" | "extensions", "ingresses") if gvr.version == "v1beta1" => {
                TypeRules::IngressBeta
            }
            ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
                TypeRules::RoleBinding
            }
            ("autoscaling", "horizontalpodautoscalers") => TypeRules::HorizontalPodAutoscaler,
            ("storage.k8s.io", "storageclasses") => TypeRules::StorageClass,
            ("scheduling.k8s.io", "priorityclasses") => TypeRules::PriorityClass,
            _ => TypeRules::Plain,
        }
    }

    /// Whether these are a core `v1` Secret's rules.
    pub fn is_secret(self) -> bool {
        self == TypeRules::Secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_rules_come_from_the_group_and_resource() {
        let of = |g: &str, r: &str| TypeRules::of(&Gvr::new(g, "v1", r));
        assert_eq!(of("", "secrets"), TypeRules::Secret);
        assert!(of("", "secrets").is_secret());
        assert_eq!(of("example.com", "secrets"), TypeRules::Plain);
        assert!(!of("example.com", "secrets").is_secret());
        assert_eq!(of("apps", "deployments"), TypeRules::Deployment);
        assert_eq!(
            of("", "replicationcontrollers"),
            TypeRules::ReplicationController
        );
        assert_eq!(of("batch", "jobs"), TypeRules::Job);
        assert_eq!(of("batch", "cronjobs"), TypeRules::CronJob);
        assert_eq!(of("", "podtemplates"), TypeRules::PodTemplate);
        assert_eq!(of("example.com", "deployments"), TypeRules::Plain);
        assert_eq!(of("", "configmaps"), TypeRules::Plain);
    }
}
