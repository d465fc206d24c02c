//! What each subcommand does, at the CLI edge: errors become `anyhow` with
//! context, and each failure carries the exit code it stands for.

use std::ffi::OsString;

use anyhow::{Context, anyhow};
use clap::{CommandFactory, FromArgMatches};
use tcplab::agent::kernel::diag::{SockDiag, SocketFilter};
use tcplab::agent::programs::server_program::{self, ServeOptions};
use tcplab::agent::{self, AgentOptions};
use tcplab::experiment::catalogue;
use tcplab::experiment::spec::Experiment;
use tcplab::interrupt::Interrupt;
use tcplab::lab::Lab;
use tcplab::lab::debian_sources::{MirrorError, debian_mirror};
use tcplab::protocol::SocketOptions;
use tcplab::report;
use tcplab::report::wrap::wrap;

use crate::cli::{CleanArgs, Cli, Command, ExperimentCommand, LabAction, RunOptions, ServeArgs};
use crate::did_you_mean;
use crate::lab_command;
use crate::outcome::{Failure, emit, environment, experiment_by_name_or_file, runtime, usage};
use crate::run_command::{self, Output};

/// Runs the parsed command; `Ok` carries the exit code (0, or 1 when an
/// expectation failed).
pub fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Run {
            experiment,
            options,
        } => {
            let experiment = experiment_by_name_or_file(&experiment)?;
            run_command::run(vec![experiment], &options, Output::Single)
        }
        Command::Builtin { name, run } => {
            let experiment = catalogue::find(&name)
                .ok_or_else(|| usage(anyhow!("no built-in experiment {name:?}")))?
                .map_err(|e| usage(e.into()))?;
            run_command::run(vec![experiment], &run.options, Output::Single)
        }
        Command::Experiment(args) => {
            let (experiment, options) = builtin_experiment(args)?;
            run_command::run(vec![experiment], &options, Output::Single)
        }
        Command::All { options, slow } => {
            let experiments: Vec<Experiment> = catalogue::all()
                .map_err(|e| usage(e.into()))?
                .into_iter()
                .filter(|e| slow || !e.spec.slow)
                .collect();
            run_command::run(experiments, &options, Output::Summary)
        }
        Command::List { json } => list(json),
        Command::Completions { shell } => completions(shell),
        Command::Man { dir } => crate::man_pages::man(dir.as_deref()),
        Command::Matrix(matrix) => crate::matrix_command::run(&matrix),
        Command::Bisect(args) => crate::bisect_command::run(&args),
        Command::Lab { action } => lab(action),
        Command::Sockets { port, state, json } => sockets(SocketFilter { port, state }, json),
        Command::Serve(ServeArgs {
            options_from_stdin: true,
            ..
        }) => serve_from_stdin(),
        Command::Serve(args) => serve(&serve_options(args)),
        Command::Agent {
            unshare_net,
            remove_on_exit,
            expect_sha256,
            join,
        } => agent::run(AgentOptions {
            expect_sha256,
            unshare_net,
            remove_on_exit,
            join,
        })
        .map(|()| 0)
        .map_err(environment),
    }
}

/// `tcplab lab …`: the lab's own chores.
fn lab(action: LabAction) -> Result<u8, Failure> {
    match action {
        LabAction::Clean { lab } => clean(&lab),
        LabAction::Kernels {
            json,
            refresh,
            prune,
        } => list_kernels(json, refresh, prune),
        LabAction::Mirror => match debian_mirror() {
            Ok(mirror) => {
                emit(&format!("{mirror}\n"));
                Ok(0)
            }
            Err(error @ MirrorError::BadVariable(_)) => Err(usage(error.into())),
            Err(error) => Err(environment(error.into())),
        },
        LabAction::Boot {
            kernel,
            modules,
            accel,
        } => boot_one_vm(kernel, modules, accel),
        LabAction::Up { name, kind } => lab_command::up(name, &kind),
        LabAction::Status { json } => lab_command::status(json),
        LabAction::Exec {
            name,
            host,
            command,
        } => lab_command::exec(name.as_deref(), &host, &command),
        LabAction::Shell { name, host } => lab_command::shell(name.as_deref(), &host),
        LabAction::Down { name } => lab_command::down(name.as_deref()),
        LabAction::Hold {
            name,
            kind,
            until_kept,
        } => lab_command::hold(&name, &kind, until_kept),
    }
}

/// `tcplab completions SHELL`, from the command tree with every experiment.
fn completions(shell: clap_complete::Shell) -> Result<u8, Failure> {
    let mut command = crate::cli::command_with_experiments();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "tcplab", &mut script);
    emit(&String::from_utf8_lossy(&script));
    Ok(0)
}

/// What `tcplab serve`'s flags ask for.
fn serve_options(args: ServeArgs) -> ServeOptions {
    ServeOptions {
        bind: args.bind,
        reuse: SocketOptions {
            reuseaddr: args.reuseaddr,
            reuseport: args.reuseport,
            v6only: args.v6only,
            mptcp: args.mptcp,
            local_port_range: None,
            bind_address_no_port: false,
        },
        linger_zero: args.linger_zero,
        linger2_s: args.linger2,
        close_after_client: args.close_after_client,
        greeting: args.greeting,
    }
}

/// `tcplab <name> [options]`: finds the built-in experiment and parses its options.
fn builtin_experiment(args: Vec<OsString>) -> Result<(Experiment, RunOptions), Failure> {
    let name = args
        .first()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let experiment = match catalogue::find(&name) {
        Some(parsed) => parsed.map_err(|e| usage(e.into()))?,
        None => {
            let known: Vec<_> = catalogue::names().collect();
            let guess = closest_name(&name)
                .map(|guess| format!(" did you mean '{guess}'?"))
                .unwrap_or_default();
            return Err(usage(anyhow!(
                "unknown command or experiment '{name}';{guess} experiments: {}; see `tcplab --help` and `tcplab list`",
                known.join(", ")
            )));
        }
    };
    let command = ExperimentCommand::command()
        .name(name.clone())
        .bin_name(format!("tcplab {name}"))
        .about(experiment.spec.title.to_string())
        .long_about(experiment.spec.teaches.to_string());
    let matches = command
        .try_get_matches_from(&args)
        .unwrap_or_else(|e| e.exit());
    let parsed = ExperimentCommand::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok((experiment, parsed.options))
}

/// The experiment or command `name` is most likely a slip for.
fn closest_name(name: &str) -> Option<String> {
    let commands = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect::<Vec<_>>();
    did_you_mean::closest(name, catalogue::names().map(str::to_string).chain(commands))
}

/// `tcplab lab boot`: one VM, its agent reached through this process's stdin
/// and stdout, strictly in turn: each line read is sent, and its one reply
/// printed, before the next. The VM's input is closed only after the last
/// reply (the agent takes the end of its input as "the orchestrator left"
/// and drops a request in flight), which powers the guest off; qemu dies
/// with tcplab in any case.
fn boot_one_vm(
    kernel: String,
    modules: Option<std::path::PathBuf>,
    accel: tcplab::lab::microvm::qemu::AccelChoice,
) -> Result<u8, Failure> {
    use std::io::{BufRead, BufReader, Read, Write};
    let request = tcplab::lab::LabRequest {
        choice: tcplab::lab::LabChoice::Microvm,
        kernel: Some(kernel),
        modules,
        accel,
        ..tcplab::lab::LabRequest::default()
    };
    let Lab::Microvm(lab) = Lab::resolve(&request)? else {
        return Err(environment(anyhow!(
            "--lab microvm did not resolve to the microvm lab"
        )));
    };
    let (mut qemu, _wiring) = lab.single_guest()?;
    tcplab::process::die_with_parent(&mut qemu, libc::SIGKILL);
    let mut vm = qemu
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")
        .map_err(environment)?;
    let (Some(mut to_vm), Some(from_vm)) = (vm.stdin.take(), vm.stdout.take()) else {
        return Err(environment(anyhow!(
            "qemu's stdin and stdout were not piped"
        )));
    };
    let mut from_vm = BufReader::new(from_vm);
    let mut stdout = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin").map_err(usage)?;
        if writeln!(to_vm, "{line}")
            .and_then(|()| to_vm.flush())
            .is_err()
        {
            break; // the VM is gone; its exit status says how
        }
        let mut reply = String::new();
        // One reply line, bounded like every line tcplab reads from an agent.
        match (&mut from_vm).take(16 << 20).read_line(&mut reply) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let _ = stdout.write_all(reply.as_bytes());
                let _ = stdout.flush();
            }
        }
    }
    drop(to_vm);
    let status = vm.wait().context("waiting for qemu").map_err(environment)?;
    Ok(if status.success() { 0 } else { 3 })
}

fn clean(lab: &CleanArgs) -> Result<u8, Failure> {
    let kept = crate::lab_command::clean_kept()?;
    let lab = Lab::resolve(&lab.request())?;
    let mut lines = runtime()?.block_on(async {
        let interrupt = Interrupt::listen()
            .context("cannot install signal handlers")
            .map_err(environment)?;
        lab.clean(&interrupt).await.map_err(Failure::from)
    })?;
    lines.extend(kept);
    emit(&(lines.join("\n") + "\n"));
    Ok(0)
}

fn list(json: bool) -> Result<u8, Failure> {
    let experiments = catalogue::all().map_err(|e| usage(e.into()))?;
    if json {
        let entries: Vec<_> = experiments
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name,
                    "title": e.spec.title.to_string(),
                    "teaches": e.spec.teaches.to_string(),
                    "article": e.spec.article.as_ref().map(ToString::to_string),
                    "cases": e.spec.cases.len(),
                    "slow": e.spec.slow,
                })
            })
            .collect();
        let document = serde_json::json!({ "experiments": entries });
        let text = tcplab::report::document::to_json(&document)
            .context("encoding the list")
            .map_err(environment)?;
        emit(&text);
        return Ok(0);
    }
    let mut text = String::new();
    // The names' column is as wide as the longest name.
    let width = experiments.iter().map(|e| e.name.len()).max().unwrap_or(0);
    for experiment in &experiments {
        let slow = if experiment.spec.slow { " (slow)" } else { "" };
        text.push_str(&format!(
            "{:<width$} {}{slow}\n",
            experiment.name, experiment.spec.title
        ));
        let indent = " ".repeat(width + 1);
        text.push_str(&wrap(
            &experiment.spec.teaches.to_string(),
            &indent,
            &indent,
        ));
    }
    text.push_str("\nRun one with `tcplab <NAME>`, or your own file with `tcplab run FILE`.\n");
    emit(&text);
    Ok(0)
}

fn sockets(filter: SocketFilter, json: bool) -> Result<u8, Failure> {
    let mut diag = SockDiag::open()
        .context("cannot open a sock_diag netlink socket")
        .map_err(environment)?;
    let sockets = diag
        .tcp_sockets(filter)
        .context("reading TCP sockets over sock_diag")
        .map_err(environment)?;
    let text = if json {
        report::sockets::json(&sockets).map_err(|e| environment(e.into()))?
    } else {
        report::sockets::table(&sockets)
    };
    emit(&text);
    Ok(0)
}

/// `tcplab lab kernels [--json] [--refresh] [--prune]`.
fn list_kernels(json: bool, refresh: bool, prune: bool) -> Result<u8, Failure> {
    use tcplab::lab::microvm::kernel_listing;
    if prune {
        let freed = kernel_listing::prune()?;
        emit(&format!(
            "emptied the kernel cache in {}: {:.1} MiB freed\n",
            tcplab::lab::cache::cache_dir().display(),
            freed as f64 / (1 << 20) as f64
        ));
        return Ok(0);
    }
    let listing = kernel_listing::listing(refresh)?;
    if json {
        let text =
            tcplab::report::document::to_json(&listing).map_err(|e| environment(e.into()))?;
        emit(&text);
    } else {
        crate::outcome::emit_human(&listing.human());
    }
    Ok(0)
}

/// `tcplab serve`: listens until killed; an error at bind or listen is the
/// environment's (exit 3).
fn serve(options: &ServeOptions) -> Result<u8, Failure> {
    server_program::run(options)
        .map(|()| 0)
        .map_err(|e| environment(anyhow!(e)))
}

/// `tcplab serve --options-from-stdin`: a spare server. It waits for its
/// options; input that ends first means it was not needed.
fn serve_from_stdin() -> Result<u8, Failure> {
    match server_program::read_options(std::io::stdin().lock()) {
        Ok(Some(options)) => serve(&options),
        Ok(None) => Ok(0),
        Err(message) => Err(usage(anyhow!(message))),
    }
}
