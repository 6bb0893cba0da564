//! The bid script against a reference model of the auction rules: random sequences of bids
//! (plain and proxy, raises, retries), operator extends and cancels, starts and closes, run
//! through the real script on the real Redis and through [`rules`], comparing every answer, the
//! final state and the whole durable log. A disagreement shrinks to a minimal sequence.
//!
//! `PROXY_MODEL_CASES` sets how many sequences (default 1000).

mod real;
pub mod rules;

use std::fmt;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use rules::{Answer, Auction, Bid, Cents, Change, ProxyRecord, Rules, Settings, State};

/// The bidders of a sequence: few, so that they meet often.
const BIDDERS: [&str; 4] = ["ann", "bob", "cy", "dee"];

/// What a step's amount is, resolved against the model's state when the step runs (so that
/// shrinking keeps steps meaningful).
#[derive(Debug, Clone, Copy)]
pub enum AmountPick {
    /// The minimum next bid.
    MinNext,
    /// The minimum next bid plus this many of its increments.
    Above(u8),
    /// One cent under the minimum.
    Below,
    /// A large amount, up to `MAX_BID`.
    Huge,
}

#[derive(Debug, Clone, Copy)]
pub enum MaxPick {
    Plain,
    /// The amount plus this many increments of it.
    Headroom(u8),
    /// Exactly the leader's max (a tie), when at least the amount.
    LeadersMax,
    /// The leader's max plus one cent.
    JustAboveLeader,
    /// The buy-it-now price (or the amount when there is none).
    BuyNow,
    /// `MAX_BID`.
    Ceiling,
}

#[derive(Debug, Clone)]
pub enum Step {
    Bid {
        who: u8,
        amount: AmountPick,
        max: MaxPick,
    },
    /// The same bidder and bid id as an earlier bid (by index), with perhaps another amount.
    Retry {
        earlier: u8,
        amount: AmountPick,
    },
    /// The leader raises their max by this many increments.
    Raise {
        steps: u8,
    },
    Extend {
        seconds: u16,
    },
    Cancel,
    Start,
    /// The close passes.
    Close,
    /// The scheduler ends the auction.
    End,
}

/// The settings a sequence's auction is created with.
#[derive(Debug, Clone)]
pub struct Setup {
    pub rules: Rules,
    pub starting: Cents,
    pub reserve: Option<Cents>,
    pub buy_now: Option<Cents>,
    pub ext_window_s: i64,
    pub ext_s: i64,
    pub started: bool,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub setup: Setup,
    pub steps: Vec<Step>,
}

fn bands() -> impl Strategy<Value = Vec<(Cents, Cents)>> {
    prop_oneof![
        Just(vec![(0, 5), (100, 25), (500, 50), (2500, 100), (10000, 250), (25000, 500), (50000, 1000)]),
        // A small random table: a first band from 0, then up to three more.
        (1u64..=200, proptest::collection::vec((1u64..=5000, 1u64..=500), 0..=3)).prop_map(|(first, more)| {
            let mut bands = vec![(0, first)];
            let mut from = 0;
            for (gap, step) in more {
                from += gap;
                bands.push((from, step));
            }
            bands
        }),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        bands(),
        prop_oneof![3 => Just(10_000_000_000_000u64), 1 => 5_000u64..=200_000],
        prop_oneof![Just(100u64), Just(1000), 1u64..=30_000],
        proptest::option::of(1u64..=20_000),
        proptest::option::of(0u64..=40_000),
        prop_oneof![Just(0i64), Just(60), Just(86_400)],
        30i64..=90,
        prop_oneof![4 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(bands, max_bid, starting, reserve, buy_now, ext_window_s, ext_s, started)| {
            let starting = starting.min(max_bid);
            let reserve = reserve.map(|r| starting + r).filter(|r| *r <= max_bid);
            let buy_now = buy_now.map(|n| reserve.unwrap_or(starting).max(starting + 1) + n).filter(|n| *n <= max_bid);
            Setup { rules: Rules { bands, max_bid }, starting, reserve, buy_now, ext_window_s, ext_s, started }
        })
}

fn amount_pick() -> impl Strategy<Value = AmountPick> {
    prop_oneof![
        4 => Just(AmountPick::MinNext),
        3 => (1u8..=6).prop_map(AmountPick::Above),
        1 => Just(AmountPick::Below),
        1 => Just(AmountPick::Huge),
    ]
}

fn max_pick() -> impl Strategy<Value = MaxPick> {
    prop_oneof![
        4 => Just(MaxPick::Plain),
        4 => (1u8..=20).prop_map(MaxPick::Headroom),
        2 => Just(MaxPick::LeadersMax),
        1 => Just(MaxPick::JustAboveLeader),
        1 => Just(MaxPick::BuyNow),
        1 => Just(MaxPick::Ceiling),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => (0u8..BIDDERS.len() as u8, amount_pick(), max_pick()).prop_map(|(who, amount, max)| Step::Bid { who, amount, max }),
        3 => (any::<u8>(), amount_pick()).prop_map(|(earlier, amount)| Step::Retry { earlier, amount }),
        3 => (1u8..=10).prop_map(|steps| Step::Raise { steps }),
        1 => (1u16..=600).prop_map(|seconds| Step::Extend { seconds }),
        1 => Just(Step::Cancel),
        2 => Just(Step::Start),
        1 => Just(Step::Close),
        1 => Just(Step::End),
    ]
}

pub fn case() -> impl Strategy<Value = Case> {
    (setup(), proptest::collection::vec(step(), 1..40)).prop_map(|(setup, steps)| Case { setup, steps })
}

/// The final state both sides are compared on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    pub state: State,
    pub price: Option<Cents>,
    pub leader: Option<String>,
    pub max: Option<Cents>,
    pub seq: u64,
    pub bid_count: u64,
    pub end_ms: i64,
}

/// The real system, one auction per sequence.
pub trait System {
    /// Makes the auction; `end_ms` is its close (now plus a margin the sequence cannot outlast).
    async fn create(&mut self, setup: &Setup) -> i64;
    /// Places a bid: the answer and, when the bid changed the price, the time it was decided at.
    async fn bid(&mut self, bid: &Bid) -> (Answer, Option<i64>);
    async fn extend(&mut self, seconds: i64) -> bool;
    async fn cancel(&mut self) -> bool;
    async fn start(&mut self);
    /// Moves the close into the past; returns the close it set.
    async fn pass_close(&mut self) -> i64;
    /// The scheduler's transition at the close: whether it ended the auction.
    async fn end(&mut self) -> bool;
    async fn state(&mut self) -> Final;
    async fn log(&mut self) -> (Vec<Change>, Vec<ProxyRecord>);
}

fn agree<T: PartialEq + fmt::Debug>(what: &str, step: usize, real: &T, model: &T) -> Result<(), TestCaseError> {
    if real == model {
        return Ok(());
    }
    Err(TestCaseError::fail(format!("step {step}: {what} differ\n  script: {real:?}\n  model:  {model:?}")))
}

/// Resolves a step's picks against the model's state.
fn amount_of(model: &Auction, pick: AmountPick) -> Cents {
    let base = model.min_next().unwrap_or(model.rules.max_bid);
    match pick {
        AmountPick::MinNext => base,
        AmountPick::Above(n) => (base + u64::from(n) * model.rules.increment(base)).min(model.rules.max_bid),
        AmountPick::Below => base.saturating_sub(1).max(1),
        AmountPick::Huge => (base * 7 + 100_000).min(model.rules.max_bid),
    }
}

fn max_of(model: &Auction, amount: Cents, pick: MaxPick) -> Option<Cents> {
    let ceiling = model.rules.max_bid;
    let max = match pick {
        MaxPick::Plain => return None,
        MaxPick::Headroom(n) => amount + u64::from(n) * model.rules.increment(amount),
        MaxPick::LeadersMax => model.max,
        MaxPick::JustAboveLeader => model.max + 1,
        MaxPick::BuyNow => model.settings.buy_now.unwrap_or(amount),
        MaxPick::Ceiling => ceiling,
    };
    Some(max.max(amount).min(ceiling))
}

/// Runs one sequence through the system and the model; the first disagreement fails it.
pub async fn run_case<S: System>(system: &mut S, case: &Case) -> Result<(), TestCaseError> {
    let end_ms = system.create(&case.setup).await;
    let setup = &case.setup;
    let mut model = Auction::new(
        setup.rules.clone(),
        Settings {
            starting: setup.starting,
            reserve: setup.reserve,
            buy_now: setup.buy_now,
            end_ms,
            ext_window_s: setup.ext_window_s,
            ext_s: setup.ext_s,
            started: setup.started,
        },
    );
    let mut bids: Vec<Bid> = Vec::new();
    for (i, step) in case.steps.iter().enumerate() {
        match step {
            Step::Bid { who, amount, max } => {
                let amount = amount_of(&model, *amount);
                let bid = Bid {
                    bidder: BIDDERS[usize::from(*who) % BIDDERS.len()].to_owned(),
                    bid_id: format!("b{i}"),
                    amount,
                    max: max_of(&model, amount, *max),
                };
                place(system, &mut model, &bid, i).await?;
                bids.push(bid);
            }
            Step::Retry { earlier, amount } => {
                if bids.is_empty() {
                    continue;
                }
                let mut bid = bids[usize::from(*earlier) % bids.len()].clone();
                bid.amount = amount_of(&model, *amount);
                bid.max = bid.max.map(|m| m.max(bid.amount));
                place(system, &mut model, &bid, i).await?;
            }
            Step::Raise { steps } => {
                let Some(leader) = model.leader.clone() else { continue };
                let max = (model.max + u64::from(*steps) * model.rules.increment(model.max)).min(model.rules.max_bid);
                let amount = model.price.unwrap_or(model.settings.starting);
                let bid = Bid { bidder: leader, bid_id: format!("b{i}"), amount, max: Some(max.max(amount)) };
                place(system, &mut model, &bid, i).await?;
                bids.push(bid);
            }
            Step::Extend { seconds } => {
                let seconds = i64::from(*seconds);
                agree("extend", i, &system.extend(seconds).await, &model.extend(seconds))?;
            }
            Step::Cancel => agree("cancel", i, &system.cancel().await, &model.cancel())?,
            Step::Start => {
                system.start().await;
                model.start();
            }
            Step::Close => {
                if model.state == State::Open && !model.closed {
                    let at = system.pass_close().await;
                    model.pass_close(at);
                }
            }
            Step::End => {
                if model.closed {
                    agree("end", i, &system.end().await, &model.end())?;
                }
            }
        }
    }
    let model_final = Final {
        state: model.state,
        price: model.price,
        leader: model.leader.clone(),
        max: model.leader.as_ref().map(|_| model.max),
        seq: model.seq,
        bid_count: model.bid_count,
        end_ms: model.end_ms,
    };
    let last = case.steps.len();
    agree("final state", last, &system.state().await, &model_final)?;
    let (log, proxies) = system.log().await;
    cover_log(&model.log);
    agree("log", last, &log, &model.log)?;
    agree("proxy records", last, &proxies, &model.proxies)
}

async fn place<S: System>(system: &mut S, model: &mut Auction, bid: &Bid, i: usize) -> Result<(), TestCaseError> {
    let (real, now) = system.bid(bid).await;
    let expected = model.bid(bid, now).map_err(|_| {
        TestCaseError::fail(format!("step {i}: {bid:?}: the model changed the price; the script did not ({real:?})"))
    })?;
    seen(match &expected {
        Answer::Accepted { bought_now: true, .. } => "a buy-it-now",
        Answer::Accepted { leading: false, .. } => "a bid beaten by a standing max",
        Answer::Accepted { your_max: Some(_), .. } => "a proxy bid that leads",
        Answer::Accepted { .. } => "a plain bid that leads",
        Answer::Rejected { reason, .. } => match reason {
            rules::Reason::TooLow => "bid_too_low",
            rules::Reason::AlreadyHighest => "already_highest_bidder",
            rules::Reason::NotStarted => "auction_not_started",
            rules::Reason::Ended => "auction_ended",
            rules::Reason::Cancelled => "auction_cancelled",
            rules::Reason::MaxBidReached => "max_bid_reached",
        },
    });
    agree(&format!("answers to {bid:?}"), i, &real, &expected)
}

/// How often each kind of answer and change came up over a run: a run that never reached one
/// proves nothing about it.
static COVERAGE: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn seen(what: &'static str) {
    *COVERAGE.lock().unwrap().entry(what).or_default() += 1;
}

/// Counts the kinds of change a sequence's log holds.
fn cover_log(log: &[Change]) {
    for change in log {
        seen(match change {
            Change::Bid { auto: true, placed_by: Some(_), .. } => "a price set by a standing max",
            Change::Bid { reserve_met: Some(true), auto: true, .. } => "an automatic price with the reserve met",
            Change::Bid { end_ms, prev_end_ms, .. } if end_ms > prev_end_ms => "a bid that extended the close",
            Change::Bid { .. } => "another price change",
            Change::MaxRaised { .. } => "a raise that moved no price",
            Change::Ended { bought_now: true, .. } => "an end by buy-it-now",
            Change::Ended { reserve_met: Some(false), .. } => "an end with the reserve not met",
            Change::Ended { winner: Some(_), .. } => "an end with a winner",
            Change::Ended { .. } => "an end without bids",
            Change::Extended { .. } => "an operator's extend",
            Change::Cancelled { .. } => "a cancel",
        });
    }
}

/// Runs `cases` sequences through `system`; the minimal failing sequence on a disagreement.
pub fn check<S: System>(
    runtime: &tokio::runtime::Runtime,
    system: &mut S,
    cases: u32,
) -> Result<(), Box<TestError<Case>>> {
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let system = std::cell::RefCell::new(system);
    runner.run(&case(), |case| runtime.block_on(run_case(&mut **system.borrow_mut(), &case))).map_err(Box::new)
}

/// The bid script as the services run it.
const BID_SCRIPT: &str = include_str!("../../../src/store/bid.lua");

/// How many sequences: `PROXY_MODEL_CASES`, default 1000.
fn cases() -> u32 {
    std::env::var("PROXY_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Runs `cases` sequences through `script` on a fresh test prefix.
fn check_script(script: &str, cases: u32) -> Result<(), Box<TestError<Case>>> {
    let runtime = runtime();
    let env = runtime.block_on(auction_server::testing::TestEnv::new());
    let publish = auction_server::store::Topology::of(&env.redis()).publish_command();
    let mut real = runtime.block_on(async { real::Real::new(env.store().await, &env.prefix, script, publish).await });
    let result = check(&runtime, &mut real, cases);
    drop(real);
    drop(env);
    result
}

#[test]
fn the_bid_script_agrees_with_the_model_on_random_sequences() {
    if let Err(e) = check_script(BID_SCRIPT, cases()) {
        panic!("the bid script and the model disagree: {e}");
    }
    // The sequences reached every rule (the planted-bug test shares the counts, only adding).
    let coverage = COVERAGE.lock().unwrap().clone();
    let kinds = [
        "a buy-it-now",
        "a bid beaten by a standing max",
        "a proxy bid that leads",
        "a plain bid that leads",
        "bid_too_low",
        "already_highest_bidder",
        "auction_not_started",
        "auction_ended",
        "auction_cancelled",
        "max_bid_reached",
        "a price set by a standing max",
        "an automatic price with the reserve met",
        "a bid that extended the close",
        "a raise that moved no price",
        "an end by buy-it-now",
        "an end with the reserve not met",
        "an end with a winner",
        "an operator's extend",
        "a cancel",
    ];
    let missed: Vec<&str> = kinds.iter().copied().filter(|k| !coverage.contains_key(k)).collect();
    assert!(missed.is_empty(), "{} sequences never reached: {missed:?} (seen: {coverage:?})", cases());
    eprintln!("model test coverage over {} sequences: {coverage:?}", cases());
}

/// The model test is not vacuous: a script whose ties go to the later max is caught.
#[test]
fn the_model_test_catches_ties_going_to_the_later_max() {
    let tie = PLANTED_TIE.0;
    assert!(BID_SCRIPT.contains(tie), "the planted bug no longer applies: bid.lua has no {tie:?}");
    let planted = BID_SCRIPT.replacen(tie, PLANTED_TIE.1, 1);
    match check_script(&planted, 1000).map_err(|e| *e) {
        Err(TestError::Fail(why, case)) => {
            assert!(why.message().contains("differ"), "{why}");
            assert!(case.steps.len() <= 8, "the failure did not shrink to a short sequence: {case:?}");
        }
        other => panic!("a script giving ties to the later max passed the model test: {other:?}"),
    }
}

/// The text of bid.lua's "the challenger's max beats the leader's" test, and the same test with
/// ties going to the challenger.
const PLANTED_TIE: (&str, &str) = ("max > leader_max", "max >= leader_max");
