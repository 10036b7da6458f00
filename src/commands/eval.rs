//! `eval`: the classifier and the retrieval measured on judged data sets.

use anyhow::{Result, bail};
use index::FastEmbedder;
use index::bm25::Filter;
use index::eval::SweepTable;
use index::generation::IndexDir;
use pipeline::Config;

use crate::cli::{EvalWhat, TextOrJson};

/// `eval intents` (the report, or the out-of-scope threshold sweep) and `eval retrieval`
/// (the report, and the tuned weights with `--tune`), over the live generation.
pub fn eval(config: &Config, what: EvalWhat) -> Result<()> {
    let generation = IndexDir::new(&config.index_dir).open_current()?;
    let embedder = FastEmbedder::load(&config.assets_dir)?;
    match what {
        EvalWhat::Intents {
            dataset,
            rows,
            sweep,
            format,
        } => {
            if dataset.is_empty() {
                bail!("give at least one --dataset CSV (text,intent)");
            }
            let mut set = Vec::new();
            for path in &dataset {
                set.extend(index::classifier::read_examples(path)?);
            }
            let set = index::eval::Rows::from(rows).select(set);
            if sweep {
                let table = index::eval::sweep_out_of_scope(&generation, &embedder, &set)?;
                if format == TextOrJson::Json {
                    println!("{}", serde_json::to_string_pretty(&table)?);
                } else {
                    let messages = set.len();
                    println!(
                        "{}",
                        SweepTable {
                            messages,
                            rows: &table
                        }
                    );
                }
                return Ok(());
            }
            let report = index::eval::evaluate_intents(&generation, &embedder, &set)?;
            if format == TextOrJson::Json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
        }
        EvalWhat::Retrieval {
            dataset,
            rows,
            tune,
            format,
        } => {
            let set =
                index::eval::Rows::from(rows).select(index::eval::read_retrieval_set(&dataset)?);
            let report =
                index::eval::evaluate_retrieval(&generation, &embedder, &set, &Filter::default())?;
            let tuned = if tune {
                Some(index::eval::tune_weights(&generation, &embedder, &set)?)
            } else {
                None
            };
            if format == TextOrJson::Json {
                let json = serde_json::json!({"report": report, "tuned": tuned});
                println!("{}", serde_json::to_string_pretty(&json)?);
                return Ok(());
            }
            println!("{report}");
            if let Some(tuned) = tuned {
                println!("{tuned}");
            }
        }
    }
    Ok(())
}
