//! A job's owner process as messages name it.

use mmm_store::JobRecord;

/// "pid 123 on host, heartbeat 2s ago", for messages.
pub(crate) fn owner_description(job: &JobRecord, now: i64) -> String {
    let mut text = match (job.owner_pid, job.owner_host.as_deref()) {
        (Some(pid), Some(host)) => format!("pid {pid} on {host}"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => "no owner recorded".to_string(),
    };
    if let Some(at) = job.heartbeat_at {
        text.push_str(&format!(", heartbeat {}", super::age(at, now)));
    }
    text
}
