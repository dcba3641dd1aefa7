//! `ragpulse bench topics`: the cost of assigning a question to a topic as the
//! number of topics of one assistant grows. Two indexes are timed in process,
//! one call at a time, on seeded synthetic data:
//!
//! - embedding topics: [`CentroidIndex::assign`], brute force over the
//!   contiguous f32 matrix of random unit centroids, with random unit queries
//!   (none reaches the threshold, and every call scans the whole matrix
//!   anyway);
//! - question topics without embeddings: [`LexicalIndex::assign`] (tokenising
//!   included) over synthetic questions drawn from a skewed vocabulary, half
//!   of the queries rewordings of a registered phrasing, half fresh.
//!
//! Prints markdown tables and the command that reproduces them.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::cli::TopicBenchArgs;
use crate::topics::centroids::{Assignment, CentroidIndex};
use crate::topics::lexical::LexicalIndex;

const SEED: u64 = 7;
/// The default embedding-topic threshold of the spec.
const THRESHOLD: f32 = 0.90;
/// Distinct synthetic content words of the lexical scenario.
const VOCABULARY: usize = 5_000;

#[allow(clippy::print_stdout)]
pub fn run(args: TopicBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.dims > 0, "--dims must be positive");
    anyhow::ensure!(args.assignments > 0, "--assignments must be positive");
    anyhow::ensure!(!args.topics.is_empty(), "--topics needs at least one size");
    let sizes = args
        .topics
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");

    println!(
        "## Embedding topics: nearest centroid by brute force ({} dims, threshold {THRESHOLD})\n",
        args.dims
    );
    println!("| topics | µs/assignment p50 | µs/assignment p99 | assignments/s | matrix MiB |");
    println!("|---:|---:|---:|---:|---:|");
    for &topics in &args.topics {
        let row = centroid_scenario(args.dims, topics, args.assignments);
        println!(
            "| {topics} | {:.1} | {:.1} | {:.0} | {:.1} |",
            micros(row.timing.p50),
            micros(row.timing.p99),
            row.timing.per_second,
            (topics * args.dims * 4) as f64 / (1024.0 * 1024.0),
        );
    }

    println!(
        "\n## Question topics without embeddings: lexical index (Jaccard ≥ 2/3, \
         {VOCABULARY}-word skewed vocabulary)\n"
    );
    println!(
        "| topics | µs/insert mean | µs/assignment p50 | µs/assignment p99 | assignments/s | joined |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for &topics in &args.topics {
        let row = lexical_scenario(topics, args.assignments);
        println!(
            "| {topics} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0}% |",
            micros(row.insert_mean),
            micros(row.timing.p50),
            micros(row.timing.p99),
            row.timing.per_second,
            100.0 * row.joined as f64 / args.assignments as f64,
        );
    }

    println!(
        "\nReproduce: `cargo run --release -- bench topics --dims {} --topics {sizes} \
         --assignments {}`",
        args.dims, args.assignments
    );
    Ok(())
}

struct Timing {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

/// Percentiles of the single-call samples and the throughput over `total`.
fn timing(mut samples: Vec<Duration>, total: Duration) -> Timing {
    samples.sort_unstable();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
    Timing {
        p50: at(50),
        p99: at(99),
        per_second: samples.len() as f64 / total.as_secs_f64(),
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct CentroidRow {
    timing: Timing,
}

fn centroid_scenario(dims: usize, topics: usize, assignments: usize) -> CentroidRow {
    let mut rng = SmallRng::seed_from_u64(SEED ^ topics as u64);
    let mut index = CentroidIndex::new(dims);
    let mut v = vec![0.0f32; dims];
    for topic in 0..topics {
        random_unit(&mut rng, &mut v);
        index.push(topic as i64, &v, 1);
    }
    let queries: Vec<Vec<f32>> = (0..assignments)
        .map(|_| {
            let mut q = vec![0.0f32; dims];
            random_unit(&mut rng, &mut q);
            q
        })
        .collect();
    // Warm the caches and the branch predictors on a few calls.
    for q in queries.iter().take(10) {
        black_box(index.assign(black_box(q), THRESHOLD));
    }
    let mut samples = Vec::with_capacity(assignments);
    let start = Instant::now();
    for q in &queries {
        let t = Instant::now();
        let assignment = index.assign(black_box(q), THRESHOLD);
        samples.push(t.elapsed());
        black_box(matches!(assignment, Assignment::Join { .. }));
    }
    CentroidRow {
        timing: timing(samples, start.elapsed()),
    }
}

/// Fills `v` with a random direction (uniform in the cube, then scaled to
/// unit length: not uniform on the sphere, which the timing does not need).
fn random_unit(rng: &mut SmallRng, v: &mut [f32]) {
    loop {
        for x in v.iter_mut() {
            *x = rng.random::<f32>() * 2.0 - 1.0;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
            return;
        }
    }
}

struct LexicalRow {
    insert_mean: Duration,
    timing: Timing,
    joined: usize,
}

fn lexical_scenario(topics: usize, assignments: usize) -> LexicalRow {
    let mut rng = SmallRng::seed_from_u64(SEED ^ topics as u64);
    let words = vocabulary(&mut rng);
    let phrasings: Vec<Vec<usize>> = (0..topics)
        .map(|_| {
            let len = rng.random_range(2..=6);
            (0..len).map(|_| skewed(&mut rng, words.len())).collect()
        })
        .collect();
    let mut index = LexicalIndex::new();
    let start = Instant::now();
    for (topic, phrasing) in phrasings.iter().enumerate() {
        index.insert(topic as i64, &question(&words, phrasing));
    }
    let insert_mean = start.elapsed() / topics.max(1) as u32;

    // Half rewordings of a registered phrasing (shuffled, one word added or
    // replaced), half fresh questions.
    let queries: Vec<String> = (0..assignments)
        .map(|i| {
            let mut q = if i % 2 == 0 && !phrasings.is_empty() {
                let mut q = phrasings[rng.random_range(0..phrasings.len())].clone();
                let at = rng.random_range(0..q.len());
                if rng.random::<bool>() {
                    q[at] = skewed(&mut rng, words.len());
                } else {
                    q.push(skewed(&mut rng, words.len()));
                }
                q
            } else {
                let len = rng.random_range(2..=6);
                (0..len).map(|_| skewed(&mut rng, words.len())).collect()
            };
            q.reverse();
            question(&words, &q)
        })
        .collect();
    for q in queries.iter().take(10) {
        black_box(index.assign(black_box(q)));
    }
    let mut samples = Vec::with_capacity(assignments);
    let mut joined = 0;
    let start = Instant::now();
    for q in &queries {
        let t = Instant::now();
        let topic = index.assign(black_box(q));
        samples.push(t.elapsed());
        joined += usize::from(black_box(topic).is_some());
    }
    LexicalRow {
        insert_mean,
        timing: timing(samples, start.elapsed()),
        joined,
    }
}

/// Distinct pronounceable words of two to four syllables.
fn vocabulary(rng: &mut SmallRng) -> Vec<String> {
    const CONSONANTS: &[u8] = b"bcdfghjklmnprstvwz";
    const VOWELS: &[u8] = b"aeiou";
    let mut seen = std::collections::HashSet::new();
    let mut words = Vec::with_capacity(VOCABULARY);
    while words.len() < VOCABULARY {
        let syllables = rng.random_range(2..=4);
        let mut word = String::new();
        for _ in 0..syllables {
            word.push(CONSONANTS[rng.random_range(0..CONSONANTS.len())] as char);
            word.push(VOWELS[rng.random_range(0..VOWELS.len())] as char);
        }
        if seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words
}

/// A word index skewed towards the front (u³): the first 1% of the words
/// take a fifth of the draws, like the common words of real questions.
fn skewed(rng: &mut SmallRng, len: usize) -> usize {
    let u = rng.random::<f64>();
    ((u * u * u) * len as f64) as usize % len
}

/// A normalised question: a stop-word opening, then the content words.
fn question(words: &[String], phrasing: &[usize]) -> String {
    let mut q = String::from("how do i");
    for &w in phrasing {
        q.push(' ');
        q.push_str(&words[w]);
    }
    q
}
