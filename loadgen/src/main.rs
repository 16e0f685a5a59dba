//! `loadgen`: parses the command line, runs the scenario (or, with `--child`, one
//! worker process of it), prints the table, writes `--json`, and exits non-zero when
//! the scenario's checks fail.

use clap::Parser;

use ringcast_loadgen::{child, cli, procfs, report, run, sys, table};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes: 0 pass, 1 a check failed, 2 bad arguments (clap's own code too),
/// 3 the report could not be written.
const EXIT_FAILED_CHECKS: i32 = 1;
const EXIT_BAD_ARGS: i32 = 2;
const EXIT_NO_REPORT: i32 = 3;

fn main() {
    let cli = cli::Cli::parse();
    if cli.child {
        std::process::exit(child::run());
    }
    let Some(command) = cli.command else {
        eprintln!(
            "loadgen: error: name a scenario: idle, fanout, reconnect or slow (see loadgen --help)"
        );
        std::process::exit(EXIT_BAD_ARGS);
    };
    let (plan, out) = match cli::resolve(command) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("loadgen: error: {msg}");
            std::process::exit(EXIT_BAD_ARGS);
        }
    };
    let limit = sys::raise_nofile_limit().unwrap_or(0);
    let env = procfs::environment(&plan.server_pids, limit);
    let measured = run::run(&plan, out.quiet);
    let report = report::build(plan, env, measured);
    print!("{}", table::render(&report));
    if let Some(path) = &out.json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|text| std::fs::write(path, text).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("loadgen: error: cannot write {}: {e}", path.display());
            std::process::exit(EXIT_NO_REPORT);
        }
    }
    std::process::exit(if report.ok { 0 } else { EXIT_FAILED_CHECKS });
}
