//! `executor report`: delivery metrics from a deploy log.

use crate::args::{Output, ReportArgs};
use crate::parse::parse_since;
use crate::Error;

/// `executor report`: reads the log; returns the summary as text.
pub fn run(args: &ReportArgs) -> Result<String, Error> {
    let events = crate::deploy_metrics::read_log(&args.deploy_log).map_err(Error::Usage)?;
    let now = jiff::Timestamp::now();
    let since = match &args.since {
        None => None,
        Some(when) => Some(parse_since(when, now).map_err(Error::Usage)?),
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
    Ok(text)
}
