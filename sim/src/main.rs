//! `gitops-reverser-sim --seed S [--runs N] [--steps N] [--faults a,b|none|all] [--no-shrink]
//! [--record FILE] [--save-corpus NAME --what TEXT]`, and `gitops-reverser-sim scenarios [--out DIR]`.

use std::process::ExitCode;

use gitops_reverser_sim::shrink::shrink;
use gitops_reverser_sim::swarm::{Fault, FaultChoice};
use gitops_reverser_sim::{run, Params, Report};

const USAGE: &str = "usage: gitops-reverser-sim [--seed S] [--runs N] [--steps N] [--faults name,name|none|all] [--no-shrink] [--record FILE] [--save-corpus NAME --what TEXT]
       gitops-reverser-sim scenarios [--out DIR]";

/// The workspace's corpus directory, where scenarios and saved failures go by default.
const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus");

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("scenarios") {
        return write_scenarios();
    }
    let mut seed = 1u64;
    let mut runs = 1u64;
    let mut steps = 300usize;
    let mut faults = FaultChoice::Seeded;
    let mut do_shrink = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--seed" => seed = val().parse().unwrap_or_else(|_| die("--seed: a number")),
            "--runs" => runs = val().parse().unwrap_or_else(|_| die("--runs: a number")),
            "--steps" => steps = val().parse().unwrap_or_else(|_| die("--steps: a number")),
            "--faults" => faults = parse_faults(&val()),
            "--no-shrink" => do_shrink = false,
            "-h" | "--help" => {
                println!("{USAGE}\nfaults: {}", names());
                return ExitCode::SUCCESS;
            }
            other => die(&format!("unknown argument {other}")),
        }
    }
    let mut failed = 0;
    for s in seed..seed + runs {
        let params = Params {
            seed: s,
            steps,
            faults: faults.clone(),
        };
        let report = run(&params);
        print_report(&report);
        if !report.violations.is_empty() {
            failed += 1;
            println!("FAILED: {} violation(s)", report.violations.len());
            for v in report.violations.iter().take(10) {
                println!("  - {v}");
            }
            println!("reproduce: {}", params.command());
            if do_shrink {
                let small = shrink(&report);
                println!(
                    "shrunk to: {} ({} violation(s), first: {})",
                    small.params.command(),
                    small.violations.len(),
                    small.violations[0].lines().next().unwrap_or_default()
                );
            }
        }
    }
    if runs > 1 {
        println!("{} run(s), {failed} failed", runs);
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_report(r: &Report) {
    let a = r.attribution;
    let injected: Vec<String> = r.injected.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "seed {} steps {} push maxCommits={} interval={} | faults: {}",
        r.params.seed, r.params.steps, r.push.0, r.push.1, r.swarm
    );
    println!(
        "  watch events {}, admissions {}, commits {}, attribution hit {} miss {} wrong {} ambiguous {}, injected [{}], simulated {:.1} s, hash {:016x}",
        r.watch_events,
        r.admissions,
        r.commits,
        a.hit,
        a.miss,
        a.wrong,
        a.ambiguous,
        injected.join(" "),
        r.sim_ms as f64 / 1000.0,
        r.output_hash
    );
}

fn parse_faults(s: &str) -> FaultChoice {
    match s {
        "none" => FaultChoice::Only(Vec::new()),
        "all" => FaultChoice::Only(Fault::ALL.to_vec()),
        list => FaultChoice::Only(
            list.split(',')
                .map(|n| {
                    Fault::parse(n.trim())
                        .unwrap_or_else(|| die(&format!("unknown fault {n}; known: {}", names())))
                })
                .collect(),
        ),
    }
}

fn names() -> String {
    Fault::ALL.map(|f| f.name()).join(", ")
}

fn die(msg: &str) -> ! {
    eprintln!("{msg}\n{USAGE}");
    std::process::exit(2)
}

/// `scenarios [--out DIR]`: every scripted scenario as `DIR/scenario-<name>.jsonl`, and their table
/// in `DIR/README.md` (between the `scenarios` markers) rewritten from their descriptions.
fn write_scenarios() -> ExitCode {
    let mut out = std::path::PathBuf::from(CORPUS_DIR);
    let mut args = std::env::args().skip(2);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => {
                out = args
                    .next()
                    .unwrap_or_else(|| die("--out needs a value"))
                    .into()
            }
            other => die(&format!("unknown argument {other}")),
        }
    }
    let mut table = String::from("| file | what |\n| --- | --- |\n");
    for sc in gitops_reverser_sim::scenarios::ALL {
        let rec = gitops_reverser_sim::scenarios::play(sc);
        let file = format!("scenario-{}.jsonl", sc.name);
        let text = rec.to_text().expect("scenario inputs serialize");
        write_or_die(&out.join(&file), &text);
        println!("{file} ({} inputs)", rec.entries.len());
        table.push_str(&format!("| `{file}` | {} |\n", sc.what));
    }
    let readme = out.join("README.md");
    if let Ok(text) = std::fs::read_to_string(&readme) {
        match replace_between(&text, "<!-- scenarios -->\n", "<!-- /scenarios -->", &table) {
            Some(new) => write_or_die(&readme, &new),
            None => eprintln!(
                "{}: no scenarios markers, table not written",
                readme.display()
            ),
        }
    }
    ExitCode::SUCCESS
}

fn replace_between(text: &str, start: &str, end: &str, with: &str) -> Option<String> {
    let a = text.find(start)? + start.len();
    let b = a + text[a..].find(end)?;
    Some(format!("{}{with}{}", &text[..a], &text[b..]))
}

fn write_or_die(path: &std::path::Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        die(&format!("{}: {e}", path.display()));
    }
}
