//! Status conditions in the Kubernetes convention: a type, `True`/`False`/`Unknown`, a
//! PascalCase reason, a message, and the time the status last changed — kept from the previous
//! condition of that type while its status stays, so rewriting a status never moves it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    True,
    False,
    Unknown,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::True => "True",
            State::False => "False",
            State::Unknown => "Unknown",
        }
    }
}

impl From<bool> for State {
    fn from(value: bool) -> Self {
        if value { State::True } else { State::False }
    }
}

/// The condition `type_` now, given the conditions the object had.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    state: State,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let status = state.as_str();
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_time_moves_only_with_the_status() {
        let first = condition(&[], "Ready", State::False, "Waiting", "", Some(1));
        let same = condition(std::slice::from_ref(&first), "Ready", State::False, "Waiting", "still", Some(2));
        assert_eq!(same.last_transition_time, first.last_transition_time);
        assert_eq!((same.message.as_str(), same.observed_generation), ("still", Some(2)));
        let flipped = condition(&[same], "Ready", State::True, "Ready", "", Some(2));
        assert_eq!(flipped.status, "True");
    }
}
