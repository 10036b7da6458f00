//! The analyst notebooks (`notebooks/*.ipynb`) run top to bottom, headless, against the demo
//! store's lake with the Python stack `scripts/fetch-assets` installs (deltalake, pandas,
//! matplotlib, nbclient), so they never rot; and the copies in git carry no outputs.

use std::process::Command;

use serde_json::Value;

use crate::common::{demo_lake, root};

#[test]
fn every_notebook_runs_top_to_bottom_on_the_demo_lake() {
    let dir = tempfile::tempdir().unwrap();
    let lake = demo_lake();
    let out = dir.path().join("executed");
    let run = Command::new(root().join("vendor/pyenv/bin/python"))
        .current_dir(root())
        .args(["scripts/run-notebooks.py"])
        .arg(lake)
        .arg(&out)
        .output()
        .expect("vendor/pyenv exists (scripts/fetch-assets)");
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // (notebook, figures it draws)
    for (name, figures) in [
        ("01-tour-of-the-lake.ipynb", 1),
        ("02-csat-and-resolution.ipynb", 3),
        ("03-knowledge-gaps.ipynb", 2),
    ] {
        let line = printed
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} did not run:\n{printed}"));
        assert!(line.contains(&format!("figures={figures} ")), "{line}");
        let executed: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(name)).unwrap()).unwrap();
        let errors: Vec<&Value> = executed["cells"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["outputs"].as_array().into_iter().flatten())
            .filter(|o| o["output_type"] == "error")
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}

#[test]
fn notebooks_in_git_carry_no_outputs() {
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("notebooks")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("ipynb") {
            continue;
        }
        seen += 1;
        let book: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for cell in book["cells"].as_array().unwrap() {
            if cell["cell_type"] == "code" {
                assert_eq!(cell["outputs"], serde_json::json!([]), "{}", path.display());
                assert!(cell["execution_count"].is_null(), "{}", path.display());
            }
        }
    }
    assert_eq!(seen, 3);
}
