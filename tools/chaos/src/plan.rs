//! Which faults a chaos run injects and when: a plan drawn from a seed, so a run that found a
//! problem can be repeated fault for fault (with the same build; the timing of the machine
//! still varies).

use std::time::Duration;

use pollstream_testkit::replicas::Service;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// What a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Target {
    /// `kill -9` of one replica of a service, then a restart.
    Replica {
        /// The service.
        service: ServiceName,
        /// Which replica, from 0.
        index: usize,
    },
    /// `kill -9` of the broker leading this partition of `raw-votes` when the fault fires,
    /// then a restart.
    RawVotesLeader {
        /// The partition whose leader is killed.
        partition: i32,
    },
    /// Redis killed and started again, empty.
    Redis,
    /// PostgreSQL stopped as a crash would (`pg_ctl stop -m immediate`), then started again.
    Postgres,
}

/// A [`Service`] in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceName {
    /// voting-api.
    VotingApi,
    /// poll-aggregator.
    PollAggregator,
    /// realtime-service.
    RealtimeService,
}

impl ServiceName {
    /// The testkit's name for it.
    pub fn service(self) -> Service {
        match self {
            ServiceName::VotingApi => Service::VotingApi,
            ServiceName::PollAggregator => Service::PollAggregator,
            ServiceName::RealtimeService => Service::RealtimeService,
        }
    }
}

/// The six kinds of fault; a plan of at least six faults has one of each.
const KINDS: [Kind; 6] = [
    Kind::Replica(ServiceName::VotingApi),
    Kind::Replica(ServiceName::PollAggregator),
    Kind::Replica(ServiceName::RealtimeService),
    Kind::Broker,
    Kind::Redis,
    Kind::Postgres,
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Replica(ServiceName),
    Broker,
    Redis,
    Postgres,
}

/// One fault of the plan.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedFault {
    /// When it fires, from the start of the load.
    #[serde(serialize_with = "millis")]
    pub at: Duration,
    /// What it hits.
    pub target: Target,
    /// How long the process stays down before it is started again.
    #[serde(serialize_with = "millis")]
    pub down_for: Duration,
}

fn millis<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(value.as_millis() as u64)
}

/// Draws `count` faults from `seed` for a load of `duration` against `replicas` replicas of
/// each service and a `raw-votes` topic of `partitions` partitions: the first six are one of
/// each kind in a random order, any more are of random kinds; they fire at random times
/// between 15 % and 75 % of the load, so the run starts steady and ends with time to heal.
pub fn draw(
    seed: u64,
    duration: Duration,
    count: usize,
    replicas: usize,
    partitions: i32,
) -> Vec<PlannedFault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kinds = KINDS.to_vec();
    kinds.shuffle(&mut rng);
    while kinds.len() < count {
        kinds.push(KINDS[rng.random_range(0..KINDS.len())]);
    }
    kinds.truncate(count);
    let span = duration.as_secs_f64();
    let mut times: Vec<f64> = (0..count)
        .map(|_| rng.random_range(0.15..0.75) * span)
        .collect();
    times.sort_by(f64::total_cmp);
    kinds
        .into_iter()
        .zip(times)
        .map(|(kind, at)| PlannedFault {
            at: Duration::from_secs_f64(at),
            target: match kind {
                Kind::Replica(service) => Target::Replica {
                    service,
                    index: rng.random_range(0..replicas.max(1)),
                },
                Kind::Broker => Target::RawVotesLeader {
                    partition: rng.random_range(0..partitions.max(1)),
                },
                Kind::Redis => Target::Redis,
                Kind::Postgres => Target::Postgres,
            },
            down_for: Duration::from_millis(rng.random_range(500..1500)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_faults_are_one_of_each_kind_within_the_load() {
        let plan = draw(7, Duration::from_secs(30), 6, 2, 3);
        assert_eq!(plan.len(), 6);
        let count = |f: &dyn Fn(&Target) -> bool| plan.iter().filter(|p| f(&p.target)).count();
        for service in [
            ServiceName::VotingApi,
            ServiceName::PollAggregator,
            ServiceName::RealtimeService,
        ] {
            assert_eq!(
                count(&|t| matches!(t, Target::Replica { service: s, .. } if *s == service)),
                1
            );
        }
        assert_eq!(count(&|t| matches!(t, Target::RawVotesLeader { .. })), 1);
        assert_eq!(count(&|t| *t == Target::Redis), 1);
        assert_eq!(count(&|t| *t == Target::Postgres), 1);
        assert!(plan.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(
            plan.iter()
                .all(|p| p.at >= Duration::from_secs_f64(4.5) && p.at <= Duration::from_secs(23))
        );
    }

    #[test]
    fn the_same_seed_draws_the_same_plan() {
        let a = draw(42, Duration::from_secs(60), 9, 2, 3);
        let b = draw(42, Duration::from_secs(60), 9, 2, 3);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let c = draw(43, Duration::from_secs(60), 9, 2, 3);
        assert_ne!(format!("{a:?}"), format!("{c:?}"));
    }
}
