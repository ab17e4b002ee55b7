//! `gitops-reverser-sim --seed S [--runs N] [--steps N] [--faults a,b|none|all] [--no-shrink]
//! [--record FILE] [--save-corpus NAME --what TEXT]`, and `gitops-reverser-sim scenarios [--out DIR]`.

use std::process::ExitCode;

use gitops_reverser_sim::reduce;
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
    let mut record: Option<std::path::PathBuf> = None;
    let mut save: Option<String> = None;
    let mut what: Option<String> = None;
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
            "--record" => record = Some(val().into()),
            "--save-corpus" => save = Some(val()),
            "--what" => what = Some(val()),
            "-h" | "--help" => {
                println!("{USAGE}\nfaults: {}", names());
                return ExitCode::SUCCESS;
            }
            other => die(&format!("unknown argument {other}")),
        }
    }
    if (record.is_some() || save.is_some()) && runs != 1 {
        die("--record and --save-corpus take one seed (no --runs)");
    }
    if let Some(name) = &save {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            die("--save-corpus: a name of lowercase letters, digits and dashes");
        }
        if what.is_none() {
            die("--save-corpus needs --what \"one line on what the scenario shows\"");
        }
    }
    let mut failed = 0;
    for s in seed..seed + runs {
        let params = Params {
            seed: s,
            steps,
            faults: faults.clone(),
            record: record.is_some(),
        };
        let report = run(&params);
        print_report(&report);
        if let (Some(path), Some(rec)) = (&record, &report.recording) {
            write_or_die(path, &rec.to_text().expect("inputs serialize"));
            println!(
                "recorded {} inputs to {}",
                rec.entries.len(),
                path.display()
            );
        }
        if !report.violations.is_empty() {
            failed += 1;
            println!("FAILED: {} violation(s)", report.violations.len());
            for v in report.violations.iter().take(10) {
                println!("  - {v}");
            }
            println!("reproduce: {}", params.command());
            let mut small = report.clone();
            if do_shrink {
                small = shrink(&report);
                println!(
                    "shrunk to: {} ({} violation(s), first: {})",
                    small.params.command(),
                    small.violations.len(),
                    small.violations[0].lines().next().unwrap_or_default()
                );
            }
            if let Some(name) = &save {
                save_corpus(&small.params, name, what.as_deref().unwrap_or_default());
            }
        } else if let Some(name) = &save {
            save_corpus(&params, name, what.as_deref().unwrap_or_default());
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
        "seed {} steps {} push maxCommits={} interval={} {} | faults: {}",
        r.params.seed, r.params.steps, r.push.0, r.push.1, r.behaviours, r.swarm
    );
    println!(
        "  watch events {}, admissions {}, commits {}, attribution hit {} miss {} wrong {} ambiguous {} unadmitted {}, injected [{}], simulated {:.1} s, hash {:016x}",
        r.watch_events,
        r.admissions,
        r.commits,
        a.hit,
        a.miss,
        a.wrong,
        a.ambiguous,
        a.unadmitted,
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

/// Replays at most this many candidates when shrinking on inputs.
const REDUCE_TESTS_MAX: usize = 20_000;

/// `--save-corpus NAME`: the run of `params` recorded, its inputs shrunk by delta debugging while
/// the first violation a replay can judge still shows, saved as `corpus/sim-NAME.jsonl` with a row
/// in `corpus/README.md`.
fn save_corpus(params: &Params, name: &str, what: &str) {
    let report = run(&Params {
        record: true,
        ..params.clone()
    });
    let rec = report.recording.as_deref().expect("recorded");
    let truth = report.truth.as_deref().expect("recorded");
    let judged = report.violations.iter().find_map(|v| {
        let sig = reduce::signature(v)?;
        reduce::reproduces(rec, truth, &sig).then_some(sig)
    });
    let (saved, note) = match &judged {
        Some(sig) => {
            let r = reduce::reduce(rec, truth, sig, REDUCE_TESTS_MAX);
            println!(
                "inputs shrunk from {} to {} in {} replays; the replay still shows: {sig}",
                rec.entries.len(),
                r.recording.entries.len(),
                r.tests
            );
            (r.recording, format!("shows: {sig}"))
        }
        None if report.violations.is_empty() => (rec.clone(), "passes".to_string()),
        None => {
            println!(
                "no violation of this run can be judged on a replay (those need the world's final state): saved unreduced"
            );
            (rec.clone(), "unreduced".to_string())
        }
    };
    let dir = std::path::PathBuf::from(CORPUS_DIR);
    let file = format!("sim-{name}.jsonl");
    write_or_die(
        &dir.join(&file),
        &saved.to_text().expect("inputs serialize"),
    );
    let readme = dir.join("README.md");
    let text = std::fs::read_to_string(&readme).unwrap_or_default();
    let row = format!(
        "| `{file}` | {what} (`{}`, {note}) |\n",
        params
            .command()
            .replace("cargo run -p gitops-reverser-sim --release -- ", "")
    );
    let new = match text.find("<!-- /saved -->") {
        Some(i) => format!("{}{row}{}", &text[..i], &text[i..]),
        None => format!(
            "{text}\n## Saved simulator runs\n\n| file | what |\n| --- | --- |\n{row}<!-- /saved -->\n"
        ),
    };
    write_or_die(&readme, &new);
    println!(
        "saved corpus/{file} ({} inputs). Next: cargo test -p gitops-reverser-core --test corpus \
         writes its snapshot as a .snap.new; review it, then accept with INSTA_UPDATE=always \
         (or cargo insta review)",
        saved.entries.len()
    );
}
