//! `executor report`: delivery metrics from a deploy log.

use super::Done;
use crate::args::{Output, ReportArgs};
use crate::exit::ExitStatus;
use crate::parse::parse_since;
use crate::Error;

/// `executor report`: reads the log; its summary is the result, in the format of `--output`.
pub fn run(args: &ReportArgs) -> Result<Done, Error> {
    let events = crate::deploy_metrics::read_log(&args.deploy_log)?;
    let now = jiff::Timestamp::now();
    let since = match &args.since {
        None => None,
        Some(when) => Some(parse_since(when, now)?),
    };
    let summary = crate::deploy_metrics::summarize(&events, args.release.as_deref(), since, now);
    let text = match args.output {
        Output::Json => {
            let mut s = serde_json::to_string_pretty(&summary).unwrap_or_default();
            s.push('\n');
            s
        }
        Output::Human => crate::deploy_metrics::human(&summary, args.release.as_deref()),
    };
    Ok(Done::text(ExitStatus::Success, text))
}
