//! Time validity of decoded claims, kept apart from decoding because the caller decides what
//! "now" is and what each failure means (nats-server answers an expired user with
//! "User Authentication Expired" and other failures with "Authorization Violation").

use crate::ClaimsData;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why claims are not valid at a given time; messages are Go's `ClaimsData.Validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("claim is expired")]
    Expired { expires: i64, now: i64 },
    #[error("claim is not yet valid")]
    NotYetValid { not_before: i64, now: i64 },
}

/// Checks `exp` and `nbf` against `now` (unix seconds) as Go does: expired when
/// `now > exp`, not yet valid when `nbf > now`; 0 means unset. Expiry is reported first.
pub fn validate<C: AsRef<ClaimsData> + ?Sized>(claims: &C, now: i64) -> Result<(), TimeError> {
    let d = claims.as_ref();
    if d.expires > 0 && now > d.expires {
        return Err(TimeError::Expired {
            expires: d.expires,
            now,
        });
    }
    if d.not_before > 0 && d.not_before > now {
        return Err(TimeError::NotYetValid {
            not_before: d.not_before,
            now,
        });
    }
    Ok(())
}

/// The current time in unix seconds (0 if the clock is before 1970).
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(exp: i64, nbf: i64) -> ClaimsData {
        ClaimsData {
            expires: exp,
            not_before: nbf,
            ..ClaimsData::default()
        }
    }

    #[test]
    fn boundaries_match_go() {
        assert_eq!(validate(&data(0, 0), 100), Ok(()));
        assert_eq!(validate(&data(100, 0), 100), Ok(()), "exp is inclusive");
        assert!(matches!(
            validate(&data(99, 0), 100),
            Err(TimeError::Expired { .. })
        ));
        assert_eq!(validate(&data(0, 100), 100), Ok(()), "nbf is inclusive");
        assert!(matches!(
            validate(&data(0, 101), 100),
            Err(TimeError::NotYetValid { .. })
        ));
        assert_eq!(
            validate(&data(0, 101), 100).map_err(|e| e.to_string()),
            Err("claim is not yet valid".to_string())
        );
    }
}
