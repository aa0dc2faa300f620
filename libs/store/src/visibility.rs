//! Who may see a poll's counts, and when: the rule voting-api's results endpoint and
//! realtime-service's `join` both apply.

use pollstream_wire::PollStatus;
use serde::{Deserialize, Serialize};

/// Who may see a poll's counts, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultsVisibility {
    /// Everyone, at all times.
    #[default]
    Always,
    /// A voter once their own vote is counted; the owner always.
    AfterVote,
    /// Everyone once the poll is closed; the owner always.
    AfterClose,
    /// Only the owner.
    OwnerOnly,
}

impl ResultsVisibility {
    /// The spelling stored in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultsVisibility::Always => "always",
            ResultsVisibility::AfterVote => "after_vote",
            ResultsVisibility::AfterClose => "after_close",
            ResultsVisibility::OwnerOnly => "owner_only",
        }
    }

    /// Parses the stored spelling; anything unknown is the strictest mode.
    pub fn parse(value: &str) -> Self {
        match value {
            "always" => ResultsVisibility::Always,
            "after_vote" => ResultsVisibility::AfterVote,
            "after_close" => ResultsVisibility::AfterClose,
            _ => ResultsVisibility::OwnerOnly,
        }
    }

    /// Whether `viewer` may see counts of a poll whose status is `status`. `after_close` shows
    /// them once the poll is `closed`, its tally final, not while it is `closing`.
    pub fn allows(self, viewer: Viewer, status: PollStatus) -> bool {
        viewer.is_owner
            || match self {
                ResultsVisibility::Always => true,
                ResultsVisibility::AfterVote => viewer.has_counted_ballot,
                ResultsVisibility::AfterClose => status == PollStatus::Closed,
                ResultsVisibility::OwnerOnly => false,
            }
    }

    /// Whether the rule depends on the viewer's own ballot.
    pub fn needs_ballot(self) -> bool {
        self == ResultsVisibility::AfterVote
    }
}

/// What the rule needs to know about the one asking to see counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    /// The viewer owns the poll.
    pub is_owner: bool,
    /// The viewer's ballot in this poll is counted.
    pub has_counted_ballot: bool,
}

impl Viewer {
    /// Who `subject` (`None` when anonymous) is to a poll owned by `owner_id` whose rule is
    /// `visibility`: its owner or not, and, only when the rule depends on it and they are not
    /// the owner, whether their ballot is counted, asked through `is_counted` (usually
    /// [`crate::ballots::is_counted`]) so that each service keeps its own errors.
    pub async fn decide<E>(
        owner_id: &str,
        visibility: ResultsVisibility,
        subject: Option<&str>,
        is_counted: impl AsyncFnOnce(&str) -> Result<bool, E>,
    ) -> Result<Viewer, E> {
        let is_owner = subject == Some(owner_id);
        let has_counted_ballot = match subject {
            Some(voter) if visibility.needs_ballot() && !is_owner => is_counted(voter).await?,
            _ => false,
        };
        Ok(Viewer {
            is_owner,
            has_counted_ballot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn decide(visibility: ResultsVisibility, subject: Option<&str>, counted: bool) -> Viewer {
        let asked = std::cell::Cell::new(false);
        let viewer = Viewer::decide("owner", visibility, subject, async |_: &str| {
            asked.set(true);
            Ok::<_, ()>(counted)
        })
        .await
        .unwrap();
        assert_eq!(
            asked.get(),
            visibility.needs_ballot() && subject.is_some_and(|s| s != "owner"),
            "the ballot is looked up only when the rule needs it"
        );
        viewer
    }

    #[tokio::test]
    async fn the_owner_always_sees_counts() {
        for visibility in [
            ResultsVisibility::Always,
            ResultsVisibility::AfterVote,
            ResultsVisibility::AfterClose,
            ResultsVisibility::OwnerOnly,
        ] {
            let owner = decide(visibility, Some("owner"), false).await;
            assert!(owner.is_owner);
            assert!(visibility.allows(owner, PollStatus::Open), "{visibility:?}");
        }
    }

    #[tokio::test]
    async fn others_see_counts_as_the_rule_says() {
        let anonymous = decide(ResultsVisibility::AfterVote, None, true).await;
        assert!(!ResultsVisibility::AfterVote.allows(anonymous, PollStatus::Open));
        let voter = decide(ResultsVisibility::AfterVote, Some("voter"), true).await;
        assert!(ResultsVisibility::AfterVote.allows(voter, PollStatus::Open));
        let waiting = decide(ResultsVisibility::AfterVote, Some("voter"), false).await;
        assert!(!ResultsVisibility::AfterVote.allows(waiting, PollStatus::Open));
        let audience = decide(ResultsVisibility::AfterClose, Some("voter"), false).await;
        assert!(!ResultsVisibility::AfterClose.allows(audience, PollStatus::Open));
        assert!(ResultsVisibility::AfterClose.allows(audience, PollStatus::Closed));
        assert!(!ResultsVisibility::OwnerOnly.allows(audience, PollStatus::Closed));
        assert!(ResultsVisibility::Always.allows(
            decide(ResultsVisibility::Always, None, false).await,
            PollStatus::Open
        ));
    }
}
