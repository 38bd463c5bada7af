//! `cargo xtask observer-cost`: what `memspike exec` adds to a real program, the figure the
//! README quotes.
//!
//! The program is Debian's `gofmt` (a Go program nobody here wrote) on a generated Go file of
//! about 5.7 MB, which takes it about 1.5 s and 250 MiB. Each round runs, in an order that
//! rotates from round to round:
//! - **bare**: the program alone, in a memory cgroup this command makes beside memspike's own
//!   (the same kind of group, the same limit, no swap), joined before exec by `sh`;
//! - **exec, untraced**: `memspike exec --no-trace` (the group, the sampling of its usage every
//!   10 ms and gctrace's reading, no eBPF);
//! - **exec, traced**: `memspike exec`, everything a user gets.
//!
//! Per case it prints the median wall time (spawn to exit) and the median CPU time (user +
//! system of every process of the case: memspike's own included), and each against bare.
//! Everything memspike does is in the figures: its start, the eBPF programs' load and unload,
//! the group's making and removal, the sampling, the reading of stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::resource::{UsageWho, getrusage};

use crate::privilege;
use crate::progress::Step;
use crate::run_cmd;

/// The group's limit in every case: far above what gofmt needs, so that no case is killed.
const LIMIT: &str = "1GiB";
const LIMIT_BYTES: u64 = 1 << 30;
/// Functions in the generated file (about 5.7 MB of Go).
const FUNCTIONS: usize = 60_000;

#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Timed rounds (each runs every case once).
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

/// One way of running the program.
#[derive(Clone, Copy)]
enum Case {
    Bare,
    Untraced,
    Traced,
}

const CASES: [Case; 3] = [Case::Bare, Case::Untraced, Case::Traced];

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Bare => "bare: gofmt alone in a memory cgroup",
            Case::Untraced => "memspike exec --no-trace",
            Case::Traced => "memspike exec (eBPF traced)",
        }
    }
}

pub fn observer_cost(opts: &Options) -> Result<ExitCode> {
    if !privilege::is_root() {
        bail!("the bench makes memory cgroups and memspike loads eBPF: run it as root");
    }
    if opts.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let gofmt = which::which("gofmt").context(
        "the bench runs Debian's gofmt: `cargo xtask test` installs golang-go, or apt-get install golang-go",
    )?;
    let binary = run_cmd::build_release()?;
    let dir = Path::new("target/observer-cost");
    std::fs::create_dir_all(dir)?;
    let input = dir.join("gen.go");
    std::fs::write(&input, generated_go(FUNCTIONS))?;
    let group = BareGroup::make()?;
    let step = Step::start(format!(
        "observer cost: gofmt on {} functions, {} cases, one warm-up and {} timed rounds",
        FUNCTIONS,
        CASES.len(),
        opts.runs
    ));
    let run = |case: Case| -> Result<(Duration, Duration)> {
        let mut cmd = match case {
            Case::Bare => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg("echo $$ > \"$1\" && exec \"$2\" \"$3\"")
                    .arg("sh")
                    .arg(group.procs())
                    .arg(&gofmt)
                    .arg(&input);
                c
            }
            Case::Untraced | Case::Traced => {
                let mut c = Command::new(&binary);
                c.args(["exec", "--limit", LIMIT, "-o", "/dev/null"]);
                if matches!(case, Case::Untraced) {
                    c.arg("--no-trace");
                }
                c.arg("--").arg(&gofmt).arg(&input);
                c
            }
        };
        timed(cmd.stdout(Stdio::null()).stderr(Stdio::null()), case.name())
    };
    for case in CASES {
        run(case)?;
    }
    let mut walls: Vec<Vec<Duration>> = vec![Vec::new(); CASES.len()];
    let mut cpus: Vec<Vec<Duration>> = vec![Vec::new(); CASES.len()];
    for round in 0..opts.runs {
        for k in 0..CASES.len() {
            let i = (round + k) % CASES.len();
            let (wall, cpu) = run(CASES[i])?;
            walls[i].push(wall);
            cpus[i].push(cpu);
        }
    }
    step.done();
    let (bare_wall, bare_cpu) = (median(&walls[0]), median(&cpus[0]));
    println!("| case | wall (median) | vs bare | CPU (median) | vs bare |");
    println!("|---|---|---|---|---|");
    for (i, case) in CASES.iter().enumerate() {
        let (wall, cpu) = (median(&walls[i]), median(&cpus[i]));
        println!(
            "| {} | {:.3} s | {} | {:.3} s | {} |",
            case.name(),
            wall.as_secs_f64(),
            versus(wall, bare_wall),
            cpu.as_secs_f64(),
            versus(cpu, bare_cpu),
        );
    }
    println!(
        "\n{} rounds; load average {}",
        opts.runs,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(ExitCode::SUCCESS)
}

/// `+4.1 %` (or `-`, for bare itself).
fn versus(x: Duration, bare: Duration) -> String {
    if x == bare {
        return "-".to_owned();
    }
    format!(
        "{:+.1} %",
        (x.as_secs_f64() / bare.as_secs_f64() - 1.0) * 100.0
    )
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

/// Runs `cmd` to its end: its wall time, and the CPU time of it and its descendants (the
/// growth of this process's reaped children's rusage). It must exit 0.
fn timed(cmd: &mut Command, what: &str) -> Result<(Duration, Duration)> {
    let cpu = || -> Result<Duration> {
        let u = getrusage(UsageWho::RUSAGE_CHILDREN)?;
        let t = |tv: nix::sys::time::TimeVal| {
            Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000)
        };
        Ok(t(u.user_time()) + t(u.system_time()))
    };
    let before = cpu()?;
    let start = Instant::now();
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    let wall = start.elapsed();
    if !status.success() {
        bail!("{what} failed: {status}");
    }
    Ok((wall, cpu()?.saturating_sub(before)))
}

/// A Go file of `n` small functions.
fn generated_go(n: usize) -> String {
    let mut text = String::from("package gen\n\n");
    for i in 0..n {
        text.push_str(&format!(
            "func F{i}(a, b int) int {{ x := a + b*{i}; if x > {i} {{ return x - 1 }}; return x + {i} }}\n"
        ));
    }
    text
}

/// The bare case's group: a memory cgroup beside this process, limited as memspike limits
/// its own (the limit, no swap), removed when dropped.
struct BareGroup {
    dir: PathBuf,
}

impl BareGroup {
    fn make() -> Result<BareGroup> {
        let mounts = std::fs::read_to_string("/proc/self/mounts")?;
        let own = std::fs::read_to_string("/proc/self/cgroup")?;
        // cgroup v1's memory hierarchy when mounted, else v2's unified one.
        let v1 = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup")
                && f.get(3)
                    .is_some_and(|o| o.split(',').any(|o| o == "memory")))
            .then(|| PathBuf::from(f[1]))
        });
        let (mount, path, v2) = match v1 {
            Some(mount) => {
                let path = own
                    .lines()
                    .find_map(|l| {
                        let mut p = l.splitn(3, ':');
                        let (_, controllers, path) = (p.next()?, p.next()?, p.next()?);
                        controllers
                            .split(',')
                            .any(|c| c == "memory")
                            .then_some(path)
                    })
                    .context("this process is in no v1 memory group")?;
                (mount, path.to_owned(), false)
            }
            None => {
                let mount = mounts
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
                    })
                    .context("no cgroup v1 memory hierarchy and no cgroup v2 mount")?;
                let path = own
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .context("this process is in no v2 group")?;
                (mount, path.to_owned(), true)
            }
        };
        let dir = mount
            .join(path.trim_start_matches('/'))
            .join(format!("memspike-bench-{}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let group = BareGroup { dir };
        let limit = LIMIT_BYTES.to_string();
        let files: &[(&str, &str)] = if v2 {
            &[("memory.max", &limit), ("memory.swap.max", "0")]
        } else {
            &[
                ("memory.limit_in_bytes", &limit),
                ("memory.memsw.limit_in_bytes", &limit),
            ]
        };
        for (file, value) in files {
            let path = group.dir.join(file);
            std::fs::write(&path, value).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(group)
    }

    fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
}

impl Drop for BareGroup {
    fn drop(&mut self) {
        // Every bare run has exited (each is waited for): the group is empty.
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}
