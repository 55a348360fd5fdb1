//! The errors of the transform language, worded as nats-server words them
//! (server/errors.go), because clients and operators compare these texts: the JetStream
//! API puts them in its 10146/10154/10155/10156 descriptions and config errors quote them.

use crate::go_quote;

/// What is wrong with a destination (nats-server's `ErrMappingDestination*` family, all
/// of which wrap "invalid mapping destination").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationError {
    /// An empty token, a token after `>`, or whitespace in a literal token.
    InvalidSubject,
    /// A reversible (import) transform that leaves a source wildcard unused.
    NotUsingAllWildcards,
    UnknownFunction,
    /// A wildcard index the source does not have, or a wildcard function with a
    /// literal source.
    IndexOutOfRange,
    NotEnoughArgs,
    InvalidArg,
    TooManyArgs,
    /// A function other than `wildcard` in a transform that must be reversible.
    NotSupportedForImport,
}

impl DestinationError {
    /// nats-server's text for this error.
    pub fn text(self) -> &'static str {
        match self {
            Self::InvalidSubject => "invalid mapping destination: invalid transform",
            Self::NotUsingAllWildcards => {
                "invalid mapping destination: not using all of the token wildcard(s)"
            }
            Self::UnknownFunction => "invalid mapping destination: unknown function",
            Self::IndexOutOfRange => "invalid mapping destination: wildcard index out of range",
            Self::NotEnoughArgs => {
                "invalid mapping destination: not enough arguments passed to the function"
            }
            Self::InvalidArg => {
                "invalid mapping destination: function argument is invalid or in the wrong format"
            }
            Self::TooManyArgs => {
                "invalid mapping destination: too many arguments passed to the function"
            }
            Self::NotSupportedForImport => {
                "invalid mapping destination: the only mapping function allowed for import transforms is {{Wildcard()}}"
            }
        }
    }
}

/// Why a transform cannot be built or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The source or destination is not a valid subject, the destination has a `*`,
    /// or only one of them ends in `>` (nats-server's `ErrBadSubject`).
    #[error("invalid subject")]
    BadSubject,
    /// The subject given to [`crate::SubjectTransform::match_subject`] does not match the
    /// source (nats-server's `ErrNoTransforms`).
    #[error("no matching transforms available")]
    NoMatch,
    /// A destination error about one token; the token is empty when nats-server names
    /// none (`mappingDestinationErr`: "<error> in <token>").
    #[error("{}", destination_text(.kind, .token))]
    Destination {
        kind: DestinationError,
        token: String,
    },
}

impl TransformError {
    pub(crate) fn dest(kind: DestinationError, token: impl Into<String>) -> Self {
        Self::Destination {
            kind,
            token: token.into(),
        }
    }

    /// The destination error kind, if this is one.
    pub fn destination_kind(&self) -> Option<DestinationError> {
        match self {
            Self::Destination { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

fn destination_text(kind: &DestinationError, token: &str) -> String {
    if token.is_empty() {
        kind.text().to_owned()
    } else {
        format!("{} in {token}", kind.text())
    }
}

/// Why a (weighted) subject mapping is refused: nats-server's `AddWeightedMappings`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The same destination twice in one mapping.
    #[error("duplicate entry for {}", go_quote(.0))]
    Duplicate(String),
    #[error("individual weights need to be <= 100")]
    WeightTooLarge,
    /// The weights of one cluster (or of no cluster) add up to more than 100.
    #[error("total weight needs to be <= 100")]
    TotalTooLarge,
    #[error(transparent)]
    Transform(#[from] TransformError),
}
