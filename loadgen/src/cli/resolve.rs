//! From parsed arguments to a [`Plan`]: presets, defaults and every check that needs
//! more than one flag.

use std::time::Duration;

use clap::{Args, FromArgMatches};

use super::{Command, Common, Output, PublishArgs, Target};
use crate::plan::{Endpoint, Plan, Publish, Reconnect, Scenario, Slow, Template, Trust};

/// Resolves a scenario's arguments into a plan, or says what is wrong.
pub fn resolve(cmd: Command) -> Result<(Plan, Output), String> {
    let (scenario, common, publish, reconnect, slow) = match cmd {
        Command::Idle(a) => (Scenario::Idle, a.common, None, None, None),
        Command::Fanout(a) => (Scenario::Fanout, a.common, Some(a.publish), None, None),
        Command::Reconnect(a) => {
            check(
                a.reconnect_fraction > 0.0 && a.reconnect_fraction <= 1.0,
                "--reconnect-fraction must be in (0, 1]",
            )?;
            check(
                !a.reconnect_interval.is_zero(),
                "--reconnect-interval must be above 0",
            )?;
            let r = Reconnect {
                fraction: a.reconnect_fraction,
                interval_ms: ms(a.reconnect_interval),
            };
            (
                Scenario::Reconnect,
                a.common,
                Some(a.publish),
                Some(r),
                None,
            )
        }
        Command::Slow(a) => {
            check(
                a.slow_share > 0.0 && a.slow_share < 1.0,
                "--slow-share must be in (0, 1)",
            )?;
            let after = a.slow_after.unwrap_or(a.common.duration / 3);
            check(
                after < a.common.duration,
                "--slow-after must be shorter than --duration",
            )?;
            let s = Slow {
                share: a.slow_share,
                rcvbuf: a.slow_rcvbuf.max(1024),
                after_ms: ms(after),
            };
            (Scenario::Slow, a.common, Some(a.publish), None, Some(s))
        }
    };
    let output = Output {
        json: common.json.clone(),
        quiet: common.quiet,
    };
    let publish = publish.map(|p| resolve_publish(p, &common)).transpose()?;
    let plan = resolve_common(scenario, common, publish, reconnect, slow)?;
    Ok((plan, output))
}

fn resolve_common(
    scenario: Scenario,
    c: Common,
    publish: Option<Publish>,
    reconnect: Option<Reconnect>,
    slow: Option<Slow>,
) -> Result<Plan, String> {
    check(c.connections > 0, "--connections must be at least 1")?;
    check(c.topics > 0, "--topics must be at least 1")?;
    check(
        c.connect_rate > 0.0 && c.connect_rate.is_finite(),
        "--connect-rate must be above 0",
    )?;
    check(
        c.connect_inflight > 0,
        "--connect-inflight must be at least 1",
    )?;
    check(!c.duration.is_zero(), "--duration must be above 0")?;
    check(
        c.conns_per_process >= 1,
        "--conns-per-process must be at least 1",
    )?;
    let sub_url = match (c.sub_url.as_deref(), c.target) {
        (Some(u), _) => u,
        (None, Target::Ringcast) => "/events?topic={topic}",
        (None, Target::Nchan) => "/sub/{topic}",
        (None, Target::Generic) => return Err("--target generic needs --sub-url".into()),
    };
    let subscribe = Endpoint::parse(sub_url, &c.server)?;
    check(
        subscribe.path.has(&crate::plan::Piece::Topic),
        "--sub-url needs a {topic} placeholder",
    )?;
    for h in &c.sub_headers {
        check_header(h, "--sub-header")?;
    }
    let topic_prefix = c
        .topic_prefix
        .clone()
        .unwrap_or_else(|| format!("lg{}-", std::process::id()));
    let probe_publish = match (&publish, c.probe.probe_interval) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(_)) => preset_publish(&c),
        (None, None) => None,
    };
    let probe = c.probe.resolve(&topic_prefix, probe_publish)?;
    let tls = subscribe.tls
        || publish
            .iter()
            .chain(probe.iter().flat_map(|p| &p.publish))
            .any(|p| p.endpoint.tls);
    let tls_trust = resolve_trust(&c, tls)?;
    let src_ips = c.src_ips.map(|s| s.0).unwrap_or_default();
    check_port_budget(c.connections, src_ips.len())?;
    let threads = c
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    check((1..=256).contains(&threads), "--threads must be 1 to 256")?;
    let ramp = Duration::from_secs_f64(f64::from(c.connections) / c.connect_rate);
    let deadline = c.deadline.unwrap_or(
        ramp + c.connect_timeout + c.duration + c.drain_timeout + Duration::from_secs(30),
    );
    check(
        deadline > c.duration,
        "--deadline must be longer than --duration",
    )?;
    let plan = Plan {
        scenario,
        target: format!("{:?}", c.target).to_lowercase(),
        subscribe,
        sub_headers: c.sub_headers,
        connections: c.connections,
        topics: c.topics,
        topic_prefix,
        connect_rate: c.connect_rate,
        connect_inflight: c.connect_inflight,
        connect_timeout_ms: ms(c.connect_timeout),
        duration_ms: ms(c.duration),
        drain_timeout_ms: ms(c.drain_timeout),
        deadline_ms: ms(deadline),
        src_ips,
        threads,
        conns_per_process: c.conns_per_process,
        server_pids: c.server_pids,
        publish,
        reconnect,
        slow,
        probe,
        tls,
        tls_trust,
    };
    crate::tls::check(&plan)?;
    Ok(plan)
}

/// `--ca` or `--insecure`: one of them with https, neither without (a trust flag on a
/// plain run is most likely a URL that lost its `s`).
fn resolve_trust(c: &Common, tls: bool) -> Result<Option<Trust>, String> {
    let trust = match (&c.ca, c.insecure) {
        (Some(path), _) => Some(Trust::Ca(path.clone())),
        (None, true) => Some(Trust::Insecure),
        (None, false) => None,
    };
    match (tls, trust) {
        (true, None) => Err(crate::tls::NEED_TRUST.to_owned()),
        (false, Some(_)) => Err(
            "--ca and --insecure are for https:// URLs; --server and every template here are http://"
                .to_owned(),
        ),
        (_, trust) => Ok(trust),
    }
}

/// The target's publish preset with the publish flags' defaults, for the probes of a
/// scenario that does not publish (idle); `None` for `--target generic`.
fn preset_publish(c: &Common) -> Option<Publish> {
    let cmd = PublishArgs::augment_args(clap::Command::new("defaults"));
    let matches = cmd.try_get_matches_from(["defaults"]).ok()?;
    let args = PublishArgs::from_arg_matches(&matches).ok()?;
    resolve_publish(args, c).ok()
}

fn resolve_publish(p: PublishArgs, c: &Common) -> Result<Publish, String> {
    check(
        p.rate >= 0.0 && p.rate.is_finite(),
        "--rate must be 0 (as fast as possible) or above",
    )?;
    check(p.payload <= 1 << 20, "--payload must be at most 1MiB")?;
    check(p.pub_conns >= 1, "--pub-conns must be at least 1")?;
    check(
        (1..=MAX_PIPELINE).contains(&p.pub_pipeline),
        &format!("--pub-pipeline must be 1 to {MAX_PIPELINE}"),
    )?;
    check_batch(&p, c.target)?;
    let method = p.pub_method.to_ascii_uppercase();
    check(
        !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic()),
        "--pub-method must be a word like POST",
    )?;
    let (url, mut headers) = match (p.pub_url.as_deref(), c.target) {
        (Some(u), _) => (u, vec![]),
        (None, Target::Ringcast) => ("/publish?topic={topic}", vec![]),
        (None, Target::Nchan) => ("/pub/{topic}", vec!["Accept: text/json".to_owned()]),
        (None, Target::Generic) => return Err("--target generic needs --pub-url".into()),
    };
    headers.extend(p.pub_headers);
    for h in &headers {
        check_header(h, "--pub-header")?;
    }
    let endpoint = Endpoint::parse(url, &c.server)?;
    let body = Template::parse(&p.pub_body);
    let has_data =
        endpoint.path.has(&crate::plan::Piece::Data) || body.has(&crate::plan::Piece::Data);
    check(
        has_data,
        "--pub-body or --pub-url needs a {data} placeholder",
    )?;
    let conns = p.pub_conns.min(c.topics);
    Ok(Publish {
        rate: p.rate,
        payload: p.payload,
        method,
        endpoint,
        body,
        headers,
        conns,
        pipeline: p.pub_pipeline,
        batch: p.pub_batch,
    })
}

/// Most requests in flight per publisher connection (`--pub-pipeline`).
const MAX_PIPELINE: u32 = 1024;
/// Most events per publish request (`--pub-batch`).
const MAX_BATCH: u32 = 1024;
/// Largest batch body (`--pub-batch` x `--payload`): each request is built whole in
/// memory, and ringcast refuses batches over 4 MiB unless `--max-batch-bytes` says more.
const MAX_BATCH_BYTES: usize = 64 << 20;

/// `--pub-batch` above 1 is ringcast's NDJSON form, built by loadgen itself: only with
/// ringcast's preset request, never with a template of the user's.
fn check_batch(p: &PublishArgs, target: Target) -> Result<(), String> {
    check(
        (1..=MAX_BATCH).contains(&p.pub_batch),
        &format!("--pub-batch must be 1 to {MAX_BATCH}"),
    )?;
    if p.pub_batch == 1 {
        return Ok(());
    }
    let name = format!("{target:?}").to_lowercase();
    check(
        target == Target::Ringcast,
        &format!("--pub-batch above 1 needs --target ringcast: {name} has no NDJSON batch publish"),
    )?;
    let custom = [
        (p.pub_url.is_some(), "--pub-url"),
        (p.pub_body != "{data}", "--pub-body"),
        (!p.pub_method.eq_ignore_ascii_case("POST"), "--pub-method"),
    ];
    for (given, flag) in custom {
        check(
            !given,
            &format!(
                "--pub-batch above 1 sends ringcast's NDJSON batch (POST /publish); drop {flag}"
            ),
        )?;
    }
    check(
        p.pub_batch as usize * p.payload <= MAX_BATCH_BYTES,
        "--pub-batch x --payload must be at most 64MiB (one request is built in memory)",
    )
}

fn check(ok: bool, msg: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg.to_owned())
    }
}

fn check_header(h: &str, flag: &str) -> Result<(), String> {
    let ok = h
        .split_once(':')
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()));
    check(
        ok && !h.contains(['\r', '\n']),
        &format!("{flag} {h:?}: expected \"Name: value\""),
    )
}

/// Each (source, destination) pair has about 28k ephemeral ports by default; say so
/// before the run instead of failing half-way.
fn check_port_budget(conns: u32, n_src: usize) -> Result<(), String> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    let ports = range
        .and_then(|r| {
            let mut it = r.split_whitespace().filter_map(|x| x.parse::<u32>().ok());
            Some(it.next()?.abs_diff(it.next()?) + 1)
        })
        .unwrap_or(28_232);
    let budget = u64::from(ports) * n_src.max(1) as u64;
    check(
        u64::from(conns) <= budget,
        &format!("{conns} connections need more source ports than {budget}; add addresses with --src-ips 127.0.0.2-127.0.0.17"),
    )
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}
