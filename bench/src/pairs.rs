//! The goals decided by a few percent, measured two servers at a time in alternating
//! slices. `run` measures each server for minutes, one after the other; on a shared VM
//! the machine's speed moves by more than those margins between them (nginx's full
//! handshake has cost 1,020 µs on one day and 1,650–2,300 µs on others). Here both servers
//! of a goal run side by side, are loaded in turn for a second or two each, A B B A …,
//! and each pair of neighbouring slices gives a ratio: a slow minute slows both sides of
//! it. CPU time is read to the nanosecond (schedstat), so short slices lose no precision
//! to the kernel's 10 ms ticks. Each round starts the servers afresh, since where a
//! process lands in memory can move its speed by a few percent for its whole life.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::client::{Client, Held, Sessions};
use crate::report::{Spread, Variant};
use crate::servers::{Kind, Programs, Server};

/// What a slice does to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Full mTLS handshakes with one request each, [`CONCURRENT`] at a time.
    Handshakes,
    /// Requests on [`HELD`] connections opened before the first slice.
    Requests,
}

/// Two servers and the goal their ratio is held to.
pub struct Pair {
    pub goal: &'static str,
    pub a: Variant,
    pub b: Variant,
    pub work: Work,
    /// `None`: not a goal, shown for what it explains.
    pub limit: Option<f64>,
}

const fn pair(goal: &'static str, a: Variant, b: Variant, work: Work, limit: Option<f64>) -> Pair {
    Pair {
        goal,
        a,
        b,
        work,
        limit,
    }
}

const fn v(kind: Kind, proxy: bool) -> Variant {
    Variant::new(kind, proxy)
}

pub const PAIRS: [Pair; 8] = [
    pair(
        "full handshake, vs the bare server",
        v(Kind::Gate, false),
        v(Kind::Bare, false),
        Work::Handshakes,
        Some(1.05),
    ),
    pair(
        "full handshake (access log on), vs the bare server",
        v(Kind::GateLogged, false),
        v(Kind::Bare, false),
        Work::Handshakes,
        Some(1.05),
    ),
    pair(
        "keep-alive request (built-in page), vs nginx",
        v(Kind::Gate, false),
        v(Kind::Nginx, false),
        Work::Requests,
        Some(1.0),
    ),
    pair(
        "keep-alive request (built-in page), both access logs on",
        v(Kind::GateLogged, false),
        v(Kind::NginxLogged, false),
        Work::Requests,
        Some(1.0),
    ),
    pair(
        "proxied keep-alive request, vs nginx",
        v(Kind::Gate, true),
        v(Kind::Nginx, true),
        Work::Requests,
        Some(0.7),
    ),
    pair(
        "proxied keep-alive request, both access logs on",
        v(Kind::GateLogged, true),
        v(Kind::NginxLogged, true),
        Work::Requests,
        Some(0.7),
    ),
    pair(
        "the floor: the bare proxy's keep-alive request, vs nginx",
        v(Kind::Bare, true),
        v(Kind::Nginx, true),
        Work::Requests,
        None,
    ),
    pair(
        "proxied keep-alive request, vs the bare proxy",
        v(Kind::Gate, true),
        v(Kind::Bare, true),
        Work::Requests,
        None,
    ),
];

/// How many rounds and slices, and how much work each slice is.
#[derive(Debug, Clone, Copy, Serialize, clap::Args)]
pub struct Sizes {
    /// Rounds; each starts every pair's servers afresh.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Slices per server per round.
    #[arg(long, default_value_t = 10)]
    pub slices: usize,
    /// Full handshakes per slice (about a second of a server's CPU).
    #[arg(long, default_value_t = 2000)]
    pub handshakes: usize,
    /// Keep-alive requests per slice.
    #[arg(long, default_value_t = 100_000)]
    pub requests: usize,
}

/// Connections held open for [`Work::Requests`], all busy at once.
const HELD: usize = 16;
/// Handshakes in flight at once.
const CONCURRENT: usize = 4;

/// One round of a pair: both servers' CPU µs per operation, slice by slice.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    pub a_us: Vec<f64>,
    pub b_us: Vec<f64>,
}

impl Round {
    /// A's cost over B's, slice pair by slice pair.
    fn ratios(&self) -> impl Iterator<Item = f64> + '_ {
        self.a_us.iter().zip(&self.b_us).map(|(a, b)| a / b)
    }

    /// The round's median ratio and range.
    pub fn ratio(&self) -> Option<Spread> {
        Spread::of(self.ratios().collect())
    }
}

/// A pair's rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub goal: &'static str,
    pub a: String,
    pub b: String,
    pub work: Work,
    pub limit: Option<f64>,
    pub rounds: Vec<Round>,
}

impl Outcome {
    pub fn new(pair: &Pair) -> Outcome {
        Outcome {
            goal: pair.goal,
            a: pair.a.label(),
            b: pair.b.label(),
            work: pair.work,
            limit: pair.limit,
            rounds: Vec::new(),
        }
    }

    /// Every slice pair's ratio, over all rounds.
    pub fn ratios(&self) -> Vec<f64> {
        self.rounds.iter().flat_map(Round::ratios).collect()
    }

    /// The median ratio, with the range of the slice pairs.
    pub fn ratio(&self) -> Option<Spread> {
        Spread::of(self.ratios())
    }

    /// Each round's median ratio: a server started afresh lands elsewhere in memory,
    /// which can move its speed by a few percent for its whole life, so rounds differ by
    /// more than their slices suggest.
    pub fn round_medians(&self) -> Option<Spread> {
        let medians = self.rounds.iter().map(|r| Some(r.ratio()?.median));
        Spread::of(medians.collect::<Option<_>>()?)
    }

    pub fn met(&self) -> Option<bool> {
        Some(self.ratio()?.median <= self.limit?)
    }

    /// In how many slice pairs A was within the limit: with a ratio that sits at the
    /// limit about half of them would be, so 9 of 10 says more than the median alone.
    pub fn within(&self) -> Option<usize> {
        let limit = self.limit?;
        Some(self.ratios().iter().filter(|r| **r <= limit).count())
    }

    fn us(&self, side: fn(&Round) -> &Vec<f64>) -> String {
        let all = self.rounds.iter().flat_map(|r| side(r).iter().copied());
        let decimals = if self.work == Work::Handshakes { 0 } else { 2 };
        Spread::cell(Spread::of(all.collect()), decimals)
    }
}

/// One server under load in a pair: its clients, and the connections kept for requests.
struct Side {
    server: Server,
    client: Arc<Client>,
    held: Vec<Held>,
}

impl Side {
    fn start(
        variant: Variant,
        upstream: u16,
        dir: &Path,
        programs: &Programs,
        work: Work,
        rt: &tokio::runtime::Runtime,
    ) -> Result<Side> {
        let server = Server::start(variant.kind, variant.backend(upstream), dir, programs)?;
        let client = Arc::new(Client::new(dir, server.port, "/me", Sessions::Full)?);
        // Warm up: caches filled, the allocator's pools grown, the upstream pool open.
        rt.block_on(client.handshakes(200, CONCURRENT))?;
        let mut held = Vec::new();
        if work == Work::Requests {
            held = rt.block_on(client.hold(HELD, CONCURRENT))?;
            held = rt.block_on(client.requests(held, 20_000))?;
        }
        Ok(Side {
            server,
            client,
            held,
        })
    }

    /// Server CPU µs per operation over one slice.
    fn slice(&mut self, work: Work, sizes: Sizes, rt: &tokio::runtime::Runtime) -> Result<f64> {
        let before = self.server.cpu_time()?;
        let operations = match work {
            Work::Handshakes => {
                rt.block_on(self.client.handshakes(sizes.handshakes, CONCURRENT))?;
                sizes.handshakes
            }
            Work::Requests => {
                let held = std::mem::take(&mut self.held);
                self.held = rt.block_on(self.client.requests(held, sizes.requests))?;
                // Every connection made the same number of requests.
                sizes.requests.div_ceil(self.held.len()) * self.held.len()
            }
        };
        let seconds = self.server.cpu_time()?.since(&before)?;
        Ok(seconds * 1e6 / operations as f64)
    }
}

/// Runs one round of a pair: both servers up, then `sizes.slices` slices each,
/// alternating which goes first so that a steady drift favours neither.
pub fn run(
    pair: &Pair,
    upstream: u16,
    dir: &Path,
    programs: &Programs,
    sizes: Sizes,
) -> Result<Round> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut a = Side::start(pair.a, upstream, dir, programs, pair.work, &rt)
        .with_context(|| format!("starting {}", pair.a.label()))?;
    let mut b = Side::start(pair.b, upstream, dir, programs, pair.work, &rt)
        .with_context(|| format!("starting {}", pair.b.label()))?;
    let mut round = Round::default();
    for i in 0..sizes.slices {
        if i % 2 == 0 {
            round.a_us.push(a.slice(pair.work, sizes, &rt)?);
            round.b_us.push(b.slice(pair.work, sizes, &rt)?);
        } else {
            round.b_us.push(b.slice(pair.work, sizes, &rt)?);
            round.a_us.push(a.slice(pair.work, sizes, &rt)?);
        }
    }
    // Connections first, so that the servers stop without waiting on them.
    drop((a.held, b.held));
    a.server.terminate()?;
    b.server.terminate()?;
    Ok(round)
}

pub fn markdown(outcomes: &[Outcome], sizes: Sizes) -> String {
    let mut out = String::from(
        "| pair | A, µs CPU per operation | B | A ÷ B: median of the slice pairs (min–max; the rounds' medians) | limit |\n| --- | --- | --- | --- | --- |\n",
    );
    for o in outcomes {
        let ratio = match (o.ratio(), o.round_medians()) {
            (Some(r), Some(m)) => format!(
                "{:.3}× ({:.3}–{:.3}; rounds {:.3}–{:.3})",
                r.median, r.min, r.max, m.min, m.max
            ),
            _ => "—".into(),
        };
        let limit = match (o.limit, o.met(), o.within()) {
            (Some(l), Some(met), Some(k)) => format!(
                "≤ {l:.2}×, {}; within it in {k} of {} pairs",
                if met { "met" } else { "**missed**" },
                o.ratios().len()
            ),
            _ => "—".into(),
        };
        out.push_str(&format!(
            "| {}: {} (A) and {} (B) | {} | {} | {ratio} | {limit} |\n",
            o.goal,
            o.a,
            o.b,
            o.us(|r| &r.a_us),
            o.us(|r| &r.b_us)
        ));
    }
    out.push_str(&format!(
        "\n{} rounds of {} slices per server, alternating; a slice is {} full handshakes or {} keep-alive requests on {HELD} connections.\n",
        sizes.rounds, sizes.slices, sizes.handshakes, sizes.requests
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(rounds: Vec<(Vec<f64>, Vec<f64>)>, limit: Option<f64>) -> Outcome {
        Outcome {
            goal: "g",
            a: "a".into(),
            b: "b".into(),
            work: Work::Requests,
            limit,
            rounds: rounds
                .into_iter()
                .map(|(a_us, b_us)| Round { a_us, b_us })
                .collect(),
        }
    }

    #[test]
    fn a_pair_is_judged_by_its_median_neighbouring_ratio() {
        // The host slows down by half in the middle of the first round: each slice is
        // divided by its neighbour, which slowed down with it. The second round's
        // servers run slower from the start.
        let first = (
            vec![10.0, 10.0, 15.0, 15.0, 10.0],
            vec![10.5, 10.5, 16.0, 16.0, 10.0],
        );
        let second = (vec![11.0, 11.0, 11.0], vec![10.0, 10.0, 12.0]);
        let o = outcome(vec![first, second.clone()], Some(1.0));
        let r = o.ratio().unwrap();
        assert!((r.median - 10.0 / 10.5).abs() < 1e-9, "{r:?}");
        assert!((r.max - 1.1).abs() < 1e-9);
        let rounds = o.round_medians().unwrap();
        assert!((rounds.min - 10.0 / 10.5).abs() < 1e-9 && (rounds.max - 1.1).abs() < 1e-9);
        assert_eq!((o.met(), o.within()), (Some(true), Some(6)));

        let worse = outcome(vec![second], Some(1.0));
        assert_eq!(worse.met(), Some(false));
        assert_eq!(outcome(vec![(vec![1.0], vec![2.0])], None).met(), None);
        let sizes = Sizes {
            rounds: 1,
            slices: 3,
            handshakes: 1,
            requests: 1,
        };
        let table = markdown(&[worse], sizes);
        assert!(
            table.contains("| 1.100× (0.917–1.100; rounds 1.100–1.100) | ≤ 1.00×, **missed**; within it in 1 of 3 pairs |"),
            "{table}"
        );
    }
}
