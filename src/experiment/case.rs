//! One case, start to end: its scenario's steps (`server_restart`,
//! `client_port` or `live_socket`) on a pair of hosts, with or without a
//! packet recording.
//! The runner calls [`run_case`] for each case: the scenario's steps, then
//! the verdict on what they observed. The scenarios call only `steps` below
//! them.

use std::time::Instant;

use super::result::{CaseCapture, CaseResult, Observation};
use super::spec::{CaseSpec, Experiment, Scenario, Transport};
use super::{client_port, live_socket, server_restart};
use crate::lab::LabHostPair;
use crate::lab::error::LabError;
use crate::protocol::{CaptureRecord, Mptcp, StartCapture, StopCapture};

/// Whether `hosts` can run `experiment` at all: an MPTCP experiment needs
/// MPTCP in both kernels. Asked once per pair of hosts; `Unsupported` makes
/// the runner report the experiment as skipped, with the reason.
pub(super) async fn hosts_support(
    experiment: &Experiment,
    hosts: &mut LabHostPair,
) -> Result<(), LabError> {
    if experiment.spec.protocol == Transport::Mptcp {
        for host in [&mut hosts.c1, &mut hosts.c2] {
            if let Some(why) = host.call(Mptcp {}).await?.missing {
                return Err(LabError::Unsupported(format!("{}: {why}", host.host())));
            }
        }
    }
    Ok(())
}

/// Case `index` of `experiment` on `hosts`, with the server on `port`:
/// its expectations for the hosts' kernel, what the case observed, and the
/// verdict on it. Putting the hosts back is the caller's (the runner's):
/// fresh hosts are shut down, shared ones end the case.
pub(super) async fn run_case(
    experiment: &Experiment,
    index: usize,
    port: u16,
    hosts: &mut LabHostPair,
) -> Result<CaseResult, LabError> {
    let started = Instant::now();
    let record = experiment.recording.records(index);
    let case = &experiment.spec.cases[index].for_kernel(hosts.info.kernel.as_deref());
    let observation = drive_case(experiment, case, port, hosts, record).await?;
    Ok(CaseResult::judge(
        case,
        experiment.spec.protocol,
        case.expected_state(&experiment.spec),
        observation,
        started.elapsed().as_millis() as u64,
    ))
}

/// One case on `hosts`, with the server on `port` (the experiment's own port,
/// or a free one on shared hosts: rules naming the experiment's port follow).
/// With `record`, both hosts capture packets and sample states meanwhile.
async fn drive_case(
    experiment: &Experiment,
    case: &CaseSpec,
    port: u16,
    hosts: &mut LabHostPair,
    record: bool,
) -> Result<Observation, LabError> {
    let c1_address = hosts.link.c1;
    if record {
        if let Some(address) = c1_address {
            hosts.c1.call(StartCapture { address, port }).await?;
        }
        let c2_address = hosts.link.c2;
        hosts
            .c2
            .call(StartCapture {
                address: c2_address,
                port,
            })
            .await?;
    }
    let mut observation = match experiment.spec.scenario {
        Scenario::ServerRestart => server_restart::drive(experiment, case, port, hosts).await?,
        Scenario::ClientPort => client_port::drive(experiment, case, port, hosts).await?,
        Scenario::LiveSocket => live_socket::drive(experiment, case, port, hosts).await?,
    };
    if record {
        let c1 = match c1_address {
            Some(_) => hosts.c1.call(StopCapture {}).await?.record,
            None => CaptureRecord::default(),
        };
        let c2 = hosts.c2.call(StopCapture {}).await?.record;
        observation.capture = Some(CaseCapture { c1, c2 });
    }
    Ok(observation)
}
