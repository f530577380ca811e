//! How a command ended, and the exit code that tells it (the validator's codes: 0, 1, 2).

use std::process::ExitCode;

use validator::args::exit;

/// How a command ended. Several statuses share a code: the code says success (0), a refusal
/// or failure the command handled (1), or an error (2); the status says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExitStatus {
    /// Deployed, restored, planned, paused by `--manual-promotion` or aborted by `abort`;
    /// `status`: every workload complete; a drill that met its target (exit 0).
    #[default]
    Success,
    /// The validation gate refused the manifests (policy violations or an attestation
    /// mismatch); nothing was applied (exit 1).
    Refused,
    /// The rollout failed and was rolled back (exit 1).
    RolledBack,
    /// What the command checks does not hold: `status` found a workload that is not
    /// complete; a drill missed its target or a workload failed (exit 1).
    Failed,
    /// Usage, input, policy or infrastructure errors; a held lock; a refused dry run; a
    /// rollout that could not be rolled back (exit 2).
    Error,
}

impl ExitStatus {
    /// The exit code.
    pub const fn code(self) -> u8 {
        match self {
            ExitStatus::Success => exit::OK,
            ExitStatus::Refused | ExitStatus::RolledBack | ExitStatus::Failed => exit::VIOLATIONS,
            ExitStatus::Error => exit::ERROR,
        }
    }

    /// The status of the gate from the exit code of the validator's check: 0 goes ahead,
    /// 1 (violations) is a refusal, anything else an error.
    pub const fn of_check(code: u8) -> Self {
        match code {
            exit::OK => ExitStatus::Success,
            exit::VIOLATIONS => ExitStatus::Refused,
            _ => ExitStatus::Error,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        assert_eq!(ExitStatus::Success.code(), 0);
        assert_eq!(ExitStatus::Refused.code(), 1);
        assert_eq!(ExitStatus::RolledBack.code(), 1);
        assert_eq!(ExitStatus::Failed.code(), 1);
        assert_eq!(ExitStatus::Error.code(), 2);
        for code in 0..=2 {
            assert_eq!(ExitStatus::of_check(code).code(), code);
        }
    }
}
