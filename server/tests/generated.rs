//! What the endpoint table implies is committed as `license-server generate` writes it: a row added,
//! changed or removed without regenerating fails here, naming the command that fixes it. And the
//! command itself, on a scratch copy of the workspace files: `--check` finds a stale section, a stale
//! crate and a leftover function crate; `generate` repairs all three. Last, the generated function
//! binaries (debug builds) link their own handler and no other, and depend on no OpenAPI crate.

use license_api::handlers::endpoints::TABLE;
use license_api::handlers::Endpoint;
use license_server::generate::{functions, stale, COMMAND};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_license-server");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn generated_files_are_up_to_date() {
    let stale = stale(&root()).unwrap_or_else(|e| panic!("cannot compare the generated files: {e}"));
    assert!(
        stale.is_empty(),
        "generated from the endpoint table, and stale:\n  {}\nrun `{COMMAND}` and commit the result",
        stale.join("\n  ")
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().expect("run license-server");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn check_finds_what_is_stale_and_generate_repairs_it() {
    let scratch = std::env::temp_dir().join(format!("license-server-generate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    for file in ["Cargo.toml", "template.yaml"] {
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::copy(root().join(file), scratch.join(file)).unwrap();
    }
    copy_dir(&root().join("functions"), &scratch.join("functions"));
    copy_dir(&root().join("openapi"), &scratch.join("openapi"));
    let dir = scratch.to_str().unwrap();
    assert_eq!(run(&["generate", "--check", "--root", dir]), (true, String::new()));

    // A hand edit inside the template's generated section, a function crate edited, a crate of an
    // endpoint no longer in the table (as `generate` wrote it), and an OpenAPI document edited.
    let template = std::fs::read_to_string(scratch.join("template.yaml")).unwrap();
    std::fs::write(
        scratch.join("template.yaml"),
        template.replace("Method: HEAD", "Method: GET"),
    )
    .unwrap();
    std::fs::write(scratch.join("functions/check_license/src/main.rs"), "fn main() {}\n").unwrap();
    copy_dir(
        &scratch.join("functions/activate_license"),
        &scratch.join("functions/retired_endpoint"),
    );

    let openapi = scratch.join("openapi/license-api.json");
    let document = std::fs::read_to_string(&openapi).unwrap();
    std::fs::write(&openapi, document.replace("\"check_license\"", "\"check\"")).unwrap();

    let (ok, out) = run(&["generate", "--check", "--root", dir]);
    assert!(!ok, "{out}");
    for line in [
        "template.yaml differs",
        "openapi/license-api.json differs",
        "functions/check_license/src/main.rs differs",
        "functions/retired_endpoint is not a function of the table",
        COMMAND,
    ] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }

    let (ok, out) = run(&["generate", "--root", dir]);
    assert!(ok, "{out}");
    assert!(!scratch.join("functions/retired_endpoint").exists());
    assert_eq!(
        std::fs::read_to_string(scratch.join("template.yaml")).unwrap(),
        template
    );
    assert_eq!(std::fs::read_to_string(&openapi).unwrap(), document);
    assert_eq!(run(&["generate", "--check", "--root", dir]), (true, String::new()));

    // Not the workspace root: refused, and nothing is written there.
    let (ok, out) = run(&["generate", "--root", scratch.join("functions").to_str().unwrap()]);
    assert!(!ok && out.contains("is not the workspace root"), "{out}");
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The demangled symbols of a binary, without their hashes.
fn symbols(binary: &Path) -> Vec<String> {
    let out = Command::new("nm")
        .args(["--demangle", "--defined-only"])
        .arg(binary)
        .output()
        .unwrap_or_else(|e| panic!("nm (binutils) on {}: {e}", binary.display()));
    assert!(
        out.status.success(),
        "nm {}: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

/// Each function links only its own handler: one that dispatched at run time would link them all (and
/// did: every function binary was 6,319,040 B arm64, each handler in each).
#[test]
fn each_function_binary_links_only_its_own_handler() {
    let functions = functions();
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet"]).current_dir(root());
    for f in &functions {
        build.args(["-p", f.name]);
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "cargo build of the function crates failed");
    // This test binary lives in target/debug/deps; the function binaries in target/debug.
    let exe = std::env::current_exe().unwrap();
    let debug = exe.ancestors().nth(2).unwrap();
    for f in &functions {
        let symbols = symbols(&debug.join(f.name));
        for d in TABLE.iter().filter(|d| d.endpoint != Endpoint::Root) {
            let handler = format!("license_api::handlers::{}", d.handler);
            let linked = symbols
                .iter()
                .any(|s| *s == handler || s.starts_with(&format!("{handler}::")));
            let own = f.serves.iter().any(|s| s.endpoint == d.endpoint);
            assert_eq!(linked, own, "{} links {handler}: {linked}", f.name);
        }
    }
}

/// The OpenAPI schemas are `license-server generate`'s alone (license-api's `openapi` feature): the
/// function crates, resolved together as `cargo lambda build` builds them, do not depend on utoipa.
/// (Their binaries' symbols cannot show it: unused schema code is dropped at link time either way.)
#[test]
fn the_functions_do_not_depend_on_utoipa() {
    let mut tree = Command::new(env!("CARGO"));
    tree.args(["tree", "--quiet", "--edges", "normal", "--prefix", "none"])
        .current_dir(root());
    for f in functions() {
        tree.args(["-p", f.name]);
    }
    let out = tree.output().expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let utoipa: Vec<&str> = tree.lines().filter(|l| l.starts_with("utoipa")).collect();
    assert!(utoipa.is_empty(), "the Lambda functions depend on {utoipa:?}");
}
