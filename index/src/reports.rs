//! Running a report end to end: the pipeline runs its SQL, and reports whose header names a
//! `post` step get it here (knowledge-gaps needs the embedding model, which lives in this
//! crate). The command line and the dashboard both come through [`run_report`].

use std::sync::Arc;

use deltalake::datafusion::scalar::ScalarValue;
use pipeline::report::{self, ReportArgs, ReportOutput};
use pipeline::sql::SqlEngine;

use crate::documents::{knowledge_passages, product_titles};
use crate::knowledge_gaps::knowledge_gaps;
use crate::{Embedder, IndexError};

/// Runs report `name`. `embedder` is called only when the report needs the model.
pub async fn run_report(
    engine: &SqlEngine,
    name: &str,
    args: &ReportArgs,
    embedder: impl FnOnce() -> Result<Arc<dyn Embedder>, IndexError>,
) -> Result<ReportOutput, IndexError> {
    let mut output = report::run(engine, name, args).await?;
    match output.definition.post.as_deref() {
        None => {}
        Some("cluster_questions") => {
            let shop = output
                .param("shop")
                .map_or("*", |p| p.display.as_str())
                .to_string();
            let threshold = match output.param("cluster_similarity").map(|p| &p.value) {
                Some(ScalarValue::Float64(Some(t))) => *t as f32,
                _ => {
                    return Err(IndexError::Report(format!(
                        "report {name} declares no float cluster_similarity"
                    )));
                }
            };
            let passages = knowledge_passages(engine, &shop).await?;
            let products = product_titles(engine, &shop).await?;
            let table = knowledge_gaps(
                &output.batches,
                &passages,
                &products,
                embedder()?.as_ref(),
                threshold,
            )?;
            output.batches = vec![table];
        }
        Some(other) => {
            return Err(IndexError::Report(format!(
                "report {name} names an unknown post step `{other}`"
            )));
        }
    }
    Ok(output)
}
