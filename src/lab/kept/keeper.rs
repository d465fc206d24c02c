//! The keeper of a lab that is up (`tcplab lab hold`, started by `lab up`):
//! it starts c1 and c2, writes down what it holds, says it is ready, and
//! keeps them until it is told to stop (SIGTERM from `lab down`, or
//! SIGINT; for `--keep-on-failure`, also its run closing its stdin without
//! asking to keep the lab). Then its agents undo what they did and it
//! removes the lab's directory. Killed outright, it takes its agents, and so the lab's
//! namespaces, with it; only the directory is left for `lab clean`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::record::{self, HostRecord, KeptLab, ProcessRecord};
use crate::interrupt::Interrupt;
use crate::lab::error::LabError;
use crate::lab::{Lab, LabHostPair};

/// The lab a keeper holds: its name, its directory, and the user it is
/// for (read before a rootless lab entered its user namespace, where every
/// user is root).
pub struct Holding<'a> {
    pub name: &'a str,
    pub dir: &'a Path,
    pub owner_uid: u32,
}

/// Holds `lab` as `holding` says until `until` ends (an interrupt, say);
/// `ready` hears once the hosts are up and the record is written.
pub async fn hold(
    lab: &Lab,
    holding: &Holding<'_>,
    interrupt: &Interrupt,
    ready: impl FnOnce(&KeptLab),
    until: impl std::future::Future<Output = ()>,
) -> Result<(), LabError> {
    let kind = lab.describe().kind;
    if kind != "netns" && kind != "microvm" {
        return Err(LabError::Usage(format!(
            "`tcplab lab up` keeps the netns and microvm labs up, not the {kind} lab"
        )));
    }
    let pair = lab.start(interrupt).await?;
    let kept = match describe(holding, &pair) {
        Ok(kept) => kept,
        Err(error) => {
            let _ = pair.shutdown().await;
            return Err(error);
        }
    };
    if let Err(error) = record::save(holding.dir, &kept) {
        let _ = pair.shutdown().await;
        return Err(error);
    }
    ready(&kept);
    until.await;
    pair.shutdown().await
}

/// The record of `pair`, held by this process.
fn describe(holding: &Holding<'_>, pair: &LabHostPair) -> Result<KeptLab, LabError> {
    let process = |pid: u32| {
        ProcessRecord::of(pid)
            .ok_or_else(|| LabError::Setup(format!("process {pid} ended while the lab came up")))
    };
    let c1_address = pair
        .link
        .c1
        .ok_or_else(|| LabError::Setup("the lab's c1 has no address".into()))?;
    // A microvm lab's guests run this build: `--on` checks it is still the one.
    let tcplab_sha256 = match pair.info.kind.as_str() {
        "microvm" => Some(crate::lab::local_executable::LocalExecutable::load()?.sha256),
        _ => None,
    };
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_secs());
    Ok(KeptLab {
        name: holding.name.to_string(),
        kind: pair.info.kind.to_string(),
        owner_uid: holding.owner_uid,
        since_unix,
        keeper: process(std::process::id())?,
        hosts: vec![
            HostRecord {
                name: "c1".into(),
                agent: process(pair.c1.pid())?,
                address: c1_address,
            },
            HostRecord {
                name: "c2".into(),
                agent: process(pair.c2.pid())?,
                address: pair.link.c2,
            },
        ],
        prefix_len: pair.link.prefix_len,
        kernel: pair.info.kernel.clone(),
        tcplab_sha256,
    })
}
