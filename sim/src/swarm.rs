//! Swarm testing: each seed switches every fault on or off and gives it its own weight.

use std::fmt;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Every fault the world can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The webhook is not called for a write (timeout, `failurePolicy: Ignore`).
    WebhookMissed,
    /// The webhook's request reaches the core after the watch event it caused.
    WebhookLate,
    /// The webhook allowed the write, a later admission step rejected it: never persisted.
    RejectedDownstream,
    /// A watch event is delivered twice.
    WatchDuplicate,
    /// A watch stream disconnects and resumes from its last resourceVersion.
    WatchDisconnect,
    /// A watch stream gets 410 Gone: events in the gap are lost and the stream relists.
    WatchGone,
    /// An outside writer pushes to a branch the operator writes (other paths and ours).
    OutsideWriter,
    /// A push or fetch fails and may be retried.
    GitTransient,
    /// A push's acknowledgement is lost: it may or may not have landed.
    PushUnknown,
    /// Git operations are slow (seconds instead of milliseconds).
    GitLatency,
    /// The wall clock jumps (NTP step, VM resume).
    ClockJump,
    /// The operator crashes and restarts: its memory is lost, git and the cluster stay.
    Crash,
    /// The leader is deposed and another replica's fresh core takes over, while the deposed
    /// leader's push in flight still lands (or is refused) up to seconds later: split brain
    /// against one remote, fenced by the push's expected head.
    Failover,
}

impl Fault {
    /// Every fault, in a fixed order.
    pub const ALL: [Fault; 13] = [
        Fault::WebhookMissed,
        Fault::WebhookLate,
        Fault::RejectedDownstream,
        Fault::WatchDuplicate,
        Fault::WatchDisconnect,
        Fault::WatchGone,
        Fault::OutsideWriter,
        Fault::GitTransient,
        Fault::PushUnknown,
        Fault::GitLatency,
        Fault::ClockJump,
        Fault::Crash,
        Fault::Failover,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::WebhookMissed => "webhook-missed",
            Fault::WebhookLate => "webhook-late",
            Fault::RejectedDownstream => "rejected-downstream",
            Fault::WatchDuplicate => "watch-duplicate",
            Fault::WatchDisconnect => "watch-disconnect",
            Fault::WatchGone => "watch-gone",
            Fault::OutsideWriter => "outside-writer",
            Fault::GitTransient => "git-transient",
            Fault::PushUnknown => "push-unknown",
            Fault::GitLatency => "git-latency",
            Fault::ClockJump => "clock-jump",
            Fault::Crash => "crash",
            Fault::Failover => "failover",
        }
    }

    /// Parses [`Fault::name`].
    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The highest probability this fault gets per opportunity; rare faults (crash) stay rare.
    fn weight_max(self) -> f64 {
        match self {
            Fault::Crash | Fault::Failover | Fault::ClockJump | Fault::WatchGone => 0.02,
            Fault::WatchDisconnect => 0.03,
            _ => 0.25,
        }
    }

    /// Whether this fault can cost a write its true author (the attribution check is strict without them).
    pub fn loses_attribution(self) -> bool {
        matches!(
            self,
            Fault::WebhookMissed
                | Fault::WebhookLate
                | Fault::RejectedDownstream
                | Fault::WatchGone
                | Fault::Crash
                | Fault::Failover
        )
    }
}

/// Which faults this run injects, with their probability per opportunity.
#[derive(Clone, Debug, PartialEq)]
pub struct Swarm {
    weights: [f64; Fault::ALL.len()],
}

/// How the command line constrains the swarm.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum FaultChoice {
    /// Drawn from the seed.
    #[default]
    Seeded,
    /// Exactly these faults, weights drawn from the seed.
    Only(Vec<Fault>),
}

impl Swarm {
    /// Draws the swarm. Every fault's draws happen whatever `choice` says, so `--faults` keeps the
    /// weights a seed gives the faults it leaves on.
    pub fn draw(rng: &mut ChaCha8Rng, choice: &FaultChoice) -> Self {
        let mut weights = [0.0; Fault::ALL.len()];
        for (i, f) in Fault::ALL.into_iter().enumerate() {
            let on = rng.gen_bool(0.5);
            let w = rng.gen_range(0.2..=1.0) * f.weight_max();
            let on = match choice {
                FaultChoice::Seeded => on,
                FaultChoice::Only(list) => list.contains(&f),
            };
            weights[i] = if on { w } else { 0.0 };
        }
        Self { weights }
    }

    /// No faults at all.
    pub fn none() -> Self {
        Self {
            weights: [0.0; Fault::ALL.len()],
        }
    }

    /// The probability of `fault` per opportunity (0 when off).
    pub fn p(&self, fault: Fault) -> f64 {
        self.weights[Fault::ALL.iter().position(|f| *f == fault).expect("listed")]
    }

    /// Whether `fault` is on.
    pub fn on(&self, fault: Fault) -> bool {
        self.p(fault) > 0.0
    }

    /// The faults that are on.
    pub fn enabled(&self) -> Vec<Fault> {
        Fault::ALL.into_iter().filter(|f| self.on(*f)).collect()
    }

    /// Turns every fault off (the liveness phase heals the world).
    pub fn heal(&mut self) {
        self.weights = [0.0; Fault::ALL.len()];
    }
}

impl fmt::Display for Swarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<String> = Fault::ALL
            .into_iter()
            .filter(|x| self.on(*x))
            .map(|x| format!("{}={:.3}", x.name(), self.p(x)))
            .collect();
        if on.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", on.join(" "))
        }
    }
}
