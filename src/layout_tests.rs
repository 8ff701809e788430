//! The pipeline reads top to bottom: every module may use only the stages before it. This test
//! reads `src/` and fails on a `crate::X` path (in code, outside comments and test modules)
//! that points from a stage to one at or after it, which is also what keeps the modules free
//! of import circles.

use std::path::{Path, PathBuf};

/// Stages in order; a module may use modules of a lower stage only.
const STAGES: &[(&str, u32)] = &[
    ("civil", 0),
    ("model", 0),
    ("read", 1),
    ("derive", 2),
    ("encode", 3),
    ("history", 3),
    ("render", 4),
    ("sink", 5),
    ("config", 6),
    ("backfill", 7),
    ("ci_env", 7),
    ("cli", 8),
    ("app", 9),
];

fn stage(module: &str) -> Option<u32> {
    STAGES.iter().find(|(m, _)| *m == module).map(|(_, s)| *s)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `(line, target module)` of each `crate::X` in code: comments, and everything from a
/// file's first `#[cfg(test)]` on, left out.
fn uses(text: &str) -> Vec<(usize, String)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = Vec::new();
    for (i, line) in code.lines().enumerate() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            out.push((i + 1, name));
        }
    }
    out
}

#[test]
fn every_module_uses_only_earlier_stages() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let name = rel.to_string_lossy().replace('\\', "/");
        if name.ends_with("_tests.rs") || name == "lib.rs" || name == "main.rs" {
            continue;
        }
        let module = name.split('/').next().unwrap().trim_end_matches(".rs");
        let Some(mine) = stage(module) else {
            wrong.push(format!(
                "src/{name}: module {module} has no stage in STAGES"
            ));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (line, target) in uses(&text) {
            if target == module {
                continue;
            }
            match stage(&target) {
                None => wrong.push(format!("src/{name}:{line}: crate::{target} has no stage")),
                Some(theirs) if theirs >= mine => wrong.push(format!(
                    "src/{name}:{line}: {module} (stage {mine}) uses crate::{target} (stage \
                     {theirs}): a stage may use earlier stages only"
                )),
                Some(_) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn uses_are_found_in_code_only() {
    let text = "use crate::model::Run; // crate::app\n/// crate::sink\nlet x = crate::read::f(crate::derive::g);\n#[cfg(test)]\nuse crate::app;\n";
    assert_eq!(
        uses(text),
        [
            (1, "model".to_string()),
            (3, "read".to_string()),
            (3, "derive".to_string())
        ]
    );
}
