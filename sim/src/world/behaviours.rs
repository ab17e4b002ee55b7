//! How the modelled API server, its clients and the operator differ from seed to seed. None is a
//! fault: every way is correct, and the core must not care. All are drawn here, in one place and
//! in a fixed order (a new one is drawn last, so that earlier seeds keep their histories).

use gitops_reverser_core::limits::CORRELATION_TTL_MS;
use gitops_reverser_core::PushBounds;
use gitops_reverser_core::SecretPolicy;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One seed's behaviours.
#[derive(Clone, Debug)]
pub(crate) struct Behaviours {
    /// The GitRepoConfigs' `push.maxCommits` and `push.interval`.
    pub(crate) max_commits: u32,
    pub(crate) interval: &'static str,
    /// What the core does with Secrets.
    pub(crate) secret_policy: SecretPolicy,
    /// List items come without `apiVersion`/`kind` (as the real API server sends them; the
    /// runtime adds them back from discovery).
    pub(crate) bare_lists: bool,
    /// Per write: admission runs twice (the API server retries a write after a storage conflict
    /// and calls the webhook again).
    pub(crate) admit_twice: f64,
    /// Per update: the client sends the object unchanged (admission runs; no resourceVersion, no
    /// event).
    pub(crate) unchanged_updates: f64,
    /// Per new object: it carries a finalizer, so its deletion takes two steps (the delete sets
    /// `deletionTimestamp`, a controller removes the finalizer a little later).
    pub(crate) finalizers: f64,
    /// The webhook's rules include subresources (`*/*`): `status` and `scale` writes call it.
    pub(crate) subresources: bool,
    /// Per step: a namespace is created, relabelled or deleted (with its objects).
    pub(crate) namespace_changes: f64,
    /// The Widget CRD's life: the step it is installed at (it is not served before), and the
    /// step it is deleted at, if any. `None`: installed before the run.
    pub(crate) crd_life: Option<(usize, Option<usize>)>,
    /// Per update or delete: another user makes the identical write from the same version at the
    /// same moment; both pass admission and the rival loses at storage (a conflict, or the object
    /// already gone). Its record fits the change as well as the true one.
    pub(crate) racing: f64,
    /// The step at which the Widget CRD is upgraded (`v1` added and preferred over `v1beta1`):
    /// the version wildcard's files move. `None`: served at `v1` (and `v1beta1`) all along.
    pub(crate) crd_upgrade: Option<usize>,
    /// How much one push and one resync part carry.
    pub(crate) push_bounds: PushBounds,
    /// The core's correlation TTL (`--correlation-ttl`): how long a record waits for its write
    /// and a note of a write seen without one lasts. The world's watch outages and lulls scale
    /// with it, and the attribution checker judges by it.
    pub(crate) correlation_ttl_ms: u64,
    /// repo-a seals Secrets (`spec.encryption`, SOPS with age) while repo-b redacts them; only
    /// under [`SecretPolicy::Redact`].
    pub(crate) sealed: bool,
}

impl Behaviours {
    /// Draws them for a run of `steps` steps.
    pub(crate) fn draw(rng: &mut ChaCha8Rng, steps: usize) -> Self {
        let max_commits = rng.gen_range(1..=20);
        let interval = ["1s", "5s", "30s"][rng.gen_range(0..3)];
        let secret_policy = if rng.gen_bool(0.5) {
            SecretPolicy::Redact
        } else {
            SecretPolicy::Exclude
        };
        let bare_lists = rng.gen_bool(0.5);
        let sometimes = |rng: &mut ChaCha8Rng, range: std::ops::Range<f64>| {
            if rng.gen_bool(0.5) {
                rng.gen_range(range)
            } else {
                0.0
            }
        };
        let admit_twice = sometimes(rng, 0.02..0.2);
        let unchanged_updates = sometimes(rng, 0.02..0.2);
        let finalizers = sometimes(rng, 0.1..0.6);
        let subresources = rng.gen_bool(0.5);
        let namespace_changes = sometimes(rng, 0.005..0.03);
        // Half the runs install the Widget CRD during the run (its streams wait until then), and
        // half of those delete it again later.
        let steps = steps.max(10);
        let crd_life = rng.gen_bool(0.5).then(|| {
            let installed = rng.gen_range(steps / 10..steps / 2);
            let removed = rng
                .gen_bool(0.5)
                .then(|| rng.gen_range(steps * 6 / 10..steps * 9 / 10));
            (installed, removed)
        });
        let racing = sometimes(rng, 0.02..0.2);
        // A quarter of the runs start with the Widget CRD at `v1beta1` alone and upgrade it.
        let crd_upgrade = rng
            .gen_bool(0.25)
            .then(|| rng.gen_range(steps / 5..steps * 4 / 5));
        // Half the runs cut pushes and resync parts small (a few commits, files or hundreds of
        // bytes), so that seeds, relists and bursts go out in several parts, and crashes,
        // conflicts and lost pushes land between them.
        let push_bounds = if rng.gen_bool(0.5) {
            PushBounds {
                commits_max: rng.gen_range(1..=8),
                bytes_max: rng.gen_range(200..=4_000),
                part_writes_max: rng.gen_range(1..=6),
            }
        } else {
            PushBounds::default()
        };
        // Half the runs keep the default TTL (and then the histories they had before it was
        // drawn: nothing is drawn from this stream after it); half draw one from 5 s to 300 s.
        let correlation_ttl_ms = if rng.gen_bool(0.5) {
            rng.gen_range(5_000..=300_000)
        } else {
            CORRELATION_TTL_MS
        };
        // Drawn last, and only where Secrets are written: half of those runs seal them in one
        // repository.
        let sealed = secret_policy == SecretPolicy::Redact && rng.gen_bool(0.5);
        Self {
            max_commits,
            interval,
            secret_policy,
            bare_lists,
            admit_twice,
            unchanged_updates,
            finalizers,
            subresources,
            namespace_changes,
            crd_life,
            racing,
            crd_upgrade,
            push_bounds,
            correlation_ttl_ms,
            sealed,
        }
    }

    /// The report's line of them.
    pub(crate) fn describe(&self) -> String {
        let crd = match self.crd_life {
            None => "installed".to_string(),
            Some((i, None)) => format!("installed-at-{i}"),
            Some((i, Some(r))) => format!("installed-at-{i}-deleted-at-{r}"),
        };
        let upgrade = self
            .crd_upgrade
            .map_or(String::new(), |u| format!("-upgraded-at-{u}"));
        let ttl = match self.correlation_ttl_ms {
            CORRELATION_TTL_MS => String::new(),
            ms => format!(" correlation-ttl={ms}ms"),
        };
        let b = self.push_bounds;
        let parts = if b == PushBounds::default() {
            "default".to_string()
        } else {
            format!(
                "commits<={},bytes<={},files<={}",
                b.commits_max, b.bytes_max, b.part_writes_max
            )
        };
        format!(
            "secrets={} lists={} admit-twice={:.2} unchanged-updates={:.2} racing={:.2} finalizers={:.2} subresources={} namespace-changes={:.3} crd={crd}{upgrade} parts={parts}{ttl}",
            match (self.secret_policy, self.sealed) {
                (SecretPolicy::Exclude, _) => "exclude",
                (_, true) => "sealed-in-repo-a",
                _ => "redact",
            },
            if self.bare_lists { "bare" } else { "typed" },
            self.admit_twice,
            self.unchanged_updates,
            self.racing,
            self.finalizers,
            if self.subresources { "admitted" } else { "unseen" },
            self.namespace_changes,
        )
    }
}
