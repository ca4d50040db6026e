//! `license-server generate`: writes what the endpoint table (`license_api::handlers::endpoints`)
//! implies — a crate per Lambda function (`functions/<name>/`), the `cargo lambda watch` routes in the
//! root Cargo.toml and the functions of template.yaml (each between `# BEGIN GENERATED` and
//! `# END GENERATED`), and the OpenAPI documents `openapi/*.json` ([`OPENAPI_DOCUMENTS`]). The output is committed; [`stale`] lists what differs from it, and
//! server/tests/generated.rs fails on any, so nothing derived from the table can drift from it.

use license_api::handlers::endpoints::{Descriptor, Input, TABLE};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What regenerates every output, for the messages that ask for it.
pub const COMMAND: &str = "cargo run -p license-server -- generate";

/// The function behind the HTTP API's `$default` route: it has no row in the table, since it serves
/// no endpoint, only the SPEC's 404 and 405 for everything no route takes.
pub const DEFAULT_ROUTE: &str = "default_route";

/// The Management API's function (`license_api::management::routes`, docs/management.md): no row in
/// the endpoint table either; its route table is its own, all of it behind one gateway route.
pub const MANAGEMENT: &str = "management";

/// The gateway route of [`MANAGEMENT`].
const MANAGEMENT_PATH: &str = "/api/management/{proxy+}";

/// What the management function's role may do on the table: read keys and licenses, list a company's
/// keys and a deleted license's devices, and the transactions of its changes (each item's action).
const MANAGEMENT_ACTIONS: &str =
    "dynamodb:GetItem, dynamodb:Query, dynamodb:PutItem, dynamodb:UpdateItem, dynamodb:DeleteItem, dynamodb:ConditionCheckItem";

const BEGIN: &str = "# BEGIN GENERATED";
const END: &str = "# END GENERATED";
const TABLE_FILE: &str = "shared/src/handlers/endpoints.rs";
/// Every method a route can name; an endpoint's others go to the `$default` route's function.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A Lambda function: its name (binary and crate) and the endpoints it serves, its own first (none:
/// `$default`).
pub struct Function {
    pub name: &'static str,
    pub serves: Vec<&'static Descriptor>,
}

impl Function {
    /// Its resource in template.yaml, e.g. `ActivateLicenseFunction`.
    pub fn logical_id(&self) -> String {
        logical_id(self.name)
    }
}

/// The resource in template.yaml of the function named `name`, e.g. `ActivateLicenseFunction`.
pub fn logical_id(name: &str) -> String {
    format!("{}Function", camel(name))
}

/// Every Lambda function, in table order, then the Management API's, the `$default` route's last.
pub fn functions() -> Vec<Function> {
    let mut functions: Vec<Function> = TABLE
        .iter()
        .filter(|d| d.has_function())
        .map(|d| Function {
            name: d.name,
            // Its own endpoint first, then any it hosts (the root probe).
            serves: std::iter::once(d)
                .chain(TABLE.iter().filter(|g| g.function == d.endpoint && !g.has_function()))
                .collect(),
        })
        .collect();
    for name in [MANAGEMENT, DEFAULT_ROUTE] {
        functions.push(Function {
            name,
            serves: Vec::new(),
        });
    }
    functions
}

/// `activate_license` → `ActivateLicense`.
fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// What one output is: a whole file, or the generated section of a file that is otherwise hand-written.
pub enum Output {
    File { path: PathBuf, text: String },
    Section { path: PathBuf, text: String },
}

/// Everything the table implies.
pub fn outputs() -> Vec<Output> {
    let mut out = Vec::new();
    for f in functions() {
        let dir = Path::new("functions").join(f.name);
        out.push(Output::File {
            path: dir.join("Cargo.toml"),
            text: crate_manifest(f.name),
        });
        out.push(Output::File {
            path: dir.join("src/main.rs"),
            text: main_rs(&f),
        });
    }
    out.push(Output::Section {
        path: "Cargo.toml".into(),
        text: watch_routes(),
    });
    out.push(Output::Section {
        path: "template.yaml".into(),
        text: template_functions(),
    });
    out.extend(OPENAPI_DOCUMENTS.iter().map(|d| Output::File {
        path: d.path.into(),
        text: openapi_json(&(d.build)()),
    }));
    out
}

/// A committed OpenAPI document: its path under the workspace root and what builds it.
pub struct OpenApiDocument {
    pub path: &'static str,
    pub build: fn() -> utoipa::openapi::OpenApi,
}

/// The OpenAPI documents, each built from the code's own types (docs/openapi.md); another API's
/// document is one more row.
pub const OPENAPI_DOCUMENTS: [OpenApiDocument; 2] = [
    OpenApiDocument {
        path: "openapi/license-api.json",
        build: license_api::handlers::openapi::license_api,
    },
    OpenApiDocument {
        path: "openapi/management-api.json",
        build: license_api::management::openapi::management_api,
    },
];

/// A document as committed: pretty JSON (utoipa's maps are ordered, so the bytes are stable), one
/// final newline.
fn openapi_json(document: &utoipa::openapi::OpenApi) -> String {
    // Serialising a document of string-keyed maps cannot fail; if it ever did, the file would show
    // as stale with the reason in it.
    document
        .to_pretty_json()
        .map_or_else(|e| format!("cannot serialise the document: {e}\n"), |json| json + "\n")
}

fn marker(comment: &str) -> String {
    format!("{comment} Generated by `license-server generate` from the endpoint table ({TABLE_FILE}); do not edit.\n")
}

fn crate_manifest(name: &str) -> String {
    format!(
        "{}[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition.workspace = true\nlicense.workspace = true\n\
         rust-version.workspace = true\npublish.workspace = true\n\n[[bin]]\nname = \"{name}\"\npath = \"src/main.rs\"\n\
         test = false\n\n[dependencies]\nlicense-api = {{ workspace = true, features = [\"lambda\"] }}\nlambda_http.workspace = true\ntokio.workspace = true\n",
        marker("#")
    )
}

fn main_rs(f: &Function) -> String {
    let (what, run) = match f.serves.first() {
        None if f.name == MANAGEMENT => (
            format!("the Management API (ANY {MANAGEMENT_PATH}, docs/management.md): its own route table."),
            "run_management()".to_owned(),
        ),
        Some(d) => (
            format!("{}: it names its one handler, so it links no other.", routes(f)),
            format!("run(license_api::handlers::function::{:?})", d.endpoint),
        ),
        None => (
            "the HTTP API's `$default` route: every request no other route matches gets the SPEC error body \
             (404 `not_found`, 405 `method_not_allowed`)."
                .to_owned(),
            "run_default_route()".to_owned(),
        ),
    };
    let mut doc = format!(
        "Lambda function `{}`, {what} All logic lives in the shared `license_api` crate.",
        f.name
    );
    doc.push(' ');
    doc.push_str(marker("").trim());
    format!(
        "{}\n#[tokio::main]\nasync fn main() -> Result<(), lambda_http::Error> {{\n    license_api::lambda::{run}.await\n}}\n",
        wrap("//!", &doc, 0)
    )
}

/// `POST /api/v4/activate_license`, or several joined with "and".
fn routes(f: &Function) -> String {
    f.serves
        .iter()
        .map(|d| {
            let upload = if d.input == Input::Upload {
                " (base64 request file, raw or multipart)"
            } else {
                ""
            };
            format!("{} {}{upload}", d.method, d.path)
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The methods an endpoint serves, as route tables spell them.
fn method_names(d: &Descriptor) -> Vec<String> {
    d.methods().iter().map(|m| m.as_str().to_owned()).collect()
}

/// `text` as comment lines starting with `prefix`, indented by `indent`, at most 110 columns wide.
fn wrap(prefix: &str, text: &str, indent: usize) -> String {
    let lead = format!("{}{prefix}", " ".repeat(indent));
    let mut out = String::new();
    let mut line = lead.clone();
    for word in text.split_whitespace() {
        if line.len() > lead.len() && line.len() + 1 + word.len() > 110 {
            out.push_str(&line);
            out.push('\n');
            line.clone_from(&lead);
        }
        line.push(' ');
        line.push_str(word);
    }
    out + &line + "\n"
}

/// The `[[workspace.metadata.lambda.watch.router]]` entries: each endpoint's methods to its function,
/// its path's other methods to `default_route`, then every other path to `default_route`.
fn watch_routes() -> String {
    let route = |path: &str, methods: &[&str], function: &str| {
        let methods: Vec<String> = methods.iter().map(|m| format!("\"{m}\"")).collect();
        format!(
            "[[workspace.metadata.lambda.watch.router]]\npath = \"{path}\"\nmethods = [{}]\nfunction = \"{function}\"\n\n",
            methods.join(", ")
        )
    };
    let mut out = format!("{BEGIN}\n{}", marker("#"));
    for d in &TABLE {
        let own = method_names(d);
        let own: Vec<&str> = own.iter().map(String::as_str).collect();
        let others: Vec<&str> = METHODS.into_iter().filter(|m| !own.contains(m)).collect();
        out += &route(d.path, &own, d.function.descriptor().name);
        out += &route(d.path, &others, DEFAULT_ROUTE);
    }
    out += "# The Management API, every method.\n[[workspace.metadata.lambda.watch.router]]\n";
    out += &format!("path = \"/api/management/{{*rest}}\"\nfunction = \"{MANAGEMENT}\"\n\n");
    out += "# Every other path, with any method.\n[[workspace.metadata.lambda.watch.router]]\n";
    out += &format!("path = \"/{{*path}}\"\nfunction = \"{DEFAULT_ROUTE}\"\n{END}\n");
    out
}

/// Every `AWS::Serverless::Function` of template.yaml.
fn template_functions() -> String {
    let mut out = format!("  {BEGIN}\n{}", marker("  #"));
    for f in functions() {
        out.push('\n');
        if f.name == MANAGEMENT {
            out += &management_function(&f);
        } else if f.serves.is_empty() {
            out += &default_route_function(&f);
        } else {
            out += &store_function(&f);
        }
    }
    out + "  " + END + "\n"
}

fn function_head(f: &Function, description: &str) -> String {
    format!(
        "  {}:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildMethod: rust-cargolambda\n      \
         BuildProperties:\n        Binary: {}\n    Properties:\n      CodeUri: .\n      Description: {description}\n",
        f.logical_id(),
        f.name
    )
}

fn store_function(f: &Function) -> String {
    let own = f.serves[0];
    let actions: Vec<String> = own.dynamodb.iter().map(|a| a.iam()).collect();
    let mut out = function_head(f, &routes(f));
    out += "      Policies:\n";
    if actions.is_empty() {
        // No statement on the table at all: IAM refuses an empty action list.
        out += &wrap("#", own.dynamodb_why, 8);
    } else {
        out += "        - Statement:\n";
        out += &wrap("#", own.dynamodb_why, 12);
        let _ = write!(
            out,
            "            - Effect: Allow\n              Action: [{}]\n              Resource: !GetAtt LicenseTable.Arn\n",
            actions.join(", ")
        );
    }
    out += "        # Reading the signing key: one managed policy, shared by every function that signs.\n";
    out += "        - !Ref SigningKeyReadPolicy\n      Events:\n";
    let mut head_explained = false;
    for d in &f.serves {
        for method in d.methods() {
            let name = format!(
                "{}{}",
                camel(d.name),
                if method == http::Method::HEAD { "Head" } else { "" }
            );
            if method == http::Method::HEAD && !head_explained {
                out += "        # HEAD routes of their own: HTTP API routes match the method exactly, and HEAD would\n";
                out += "        # otherwise reach the $default route's 405.\n";
                head_explained = true;
            }
            let _ = write!(
                out,
                "        {name}:\n          Type: HttpApi\n          Properties:\n            ApiId: !Ref LicenseApi\n            \
                 Method: {method}\n            Path: {}\n",
                d.path
            );
        }
    }
    out
}

/// The Management API's function: its own role (the License API's functions cannot write what it
/// writes), one gateway route for every method under its prefix.
fn management_function(f: &Function) -> String {
    let mut out = function_head(f, "The Management API - keys and licenses (docs/management.md)");
    out += "      Environment:\n        Variables:\n          MANAGEMENT_CORS_ORIGINS: !Ref ManagementCorsOrigins\n";
    out += "      Policies:\n        - Statement:\n";
    out += &wrap("#", "Reads keys and licenses, lists a company's keys and a deleted license's devices, and writes its changes in transactions; lists and searches licenses through the keys-only indexes (a product's delete asks whether it has any).", 12);
    let _ = write!(
        out,
        "            - Effect: Allow\n              Action: [{MANAGEMENT_ACTIONS}]\n              Resource: [!GetAtt LicenseTable.Arn, !Sub \"${{LicenseTable.Arn}}/index/*\"]\n"
    );
    out += "        # For the sealing key (OAuth clients' secrets); it reads no signing key (it signs nothing).\n";
    out += "        - !Ref SigningKeyReadPolicy\n      Events:\n";
    let _ = write!(
        out,
        "        Management:\n          Type: HttpApi\n          Properties:\n            ApiId: !Ref LicenseApi\n            \
         Method: ANY\n            Path: {MANAGEMENT_PATH}\n"
    );
    out
}

fn default_route_function(f: &Function) -> String {
    let mut out = String::from(
        "  # Every request no route above matches (unknown path, wrong method): without it API Gateway answers\n  \
         # {\"message\":\"Not Found\"}, which has no `code` and crashes clients (SPEC §1.1). It reads nothing,\n  \
         # so it needs no permissions beyond its logs.\n",
    );
    out += &function_head(
        f,
        "The HTTP API's $default route - SPEC-shaped 404 not_found and 405 method_not_allowed",
    );
    out += "      MemorySize: 128\n      Events:\n        Default:\n          \
            # An HttpApi event without Path and Method is the API's $default route.\n          \
            Type: HttpApi\n          Properties:\n            ApiId: !Ref LicenseApi\n";
    out
}

/// Why generation failed: a file that cannot be read or written, or a hand-written file without its
/// generated section's markers.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} has no generated section: add a line `{BEGIN}` and a line `{END}` where it goes, then run `{COMMAND}`"
    )]
    NoSection { path: PathBuf },
    #[error("{path} is not in the endpoint table ({TABLE_FILE}) and was not generated: remove it by hand")]
    Foreign { path: PathBuf },
}

fn read(path: &Path) -> Result<Option<String>, GenerateError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(GenerateError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// `current` with its generated section replaced by `section`.
fn splice(path: &Path, current: &str, section: &str) -> Result<String, GenerateError> {
    let no_section = || GenerateError::NoSection { path: path.to_owned() };
    let begin = current.find(BEGIN).ok_or_else(no_section)?;
    // From the start of the BEGIN line (it may be indented) to the end of the END line.
    let begin = current[..begin].rfind('\n').map_or(0, |i| i + 1);
    let end_at = current[begin..].find(END).ok_or_else(no_section)? + begin;
    let end = current[end_at..].find('\n').map_or(current.len(), |i| end_at + i + 1);
    Ok(format!("{}{section}{}", &current[..begin], &current[end..]))
}

/// Each output's path and what it should contain given the files under `root` now.
fn expected(root: &Path) -> Result<Vec<(PathBuf, String)>, GenerateError> {
    outputs()
        .into_iter()
        .map(|o| match o {
            Output::File { path, text } => Ok((path, text)),
            Output::Section { path, text } => {
                let full = root.join(&path);
                let current = read(&full)?.ok_or(GenerateError::NoSection { path: full.clone() })?;
                Ok((path.clone(), splice(&full, &current, &text)?))
            }
        })
        .collect()
}

/// Directories under `functions/` that no function of the table generates.
fn leftover_functions(root: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    let dir = root.join("functions");
    let io = |source| GenerateError::Io {
        path: dir.clone(),
        source,
    };
    let names: Vec<&str> = functions().iter().map(|f| f.name).collect();
    let mut leftover = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if !names.iter().any(|n| entry.file_name() == *n) {
            leftover.push(entry.path());
        }
    }
    leftover.sort();
    Ok(leftover)
}

/// What is stale under the workspace `root`, one line each; empty when everything is as generated.
pub fn stale(root: &Path) -> Result<Vec<String>, GenerateError> {
    let mut stale = Vec::new();
    for (path, text) in expected(root)? {
        match read(&root.join(&path))? {
            Some(current) if current == text => {}
            Some(_) => stale.push(format!("{} differs from what the table generates", path.display())),
            None => stale.push(format!("{} is missing", path.display())),
        }
    }
    for dir in leftover_functions(root)? {
        stale.push(format!("{} is not a function of the table", dir.display()));
    }
    Ok(stale)
}

/// Brings every output under `root` up to date; returns the files it wrote or removed.
pub fn write(root: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    let mut changed = Vec::new();
    for (path, text) in expected(root)? {
        let full = root.join(&path);
        if read(&full)?.as_deref() == Some(text.as_str()) {
            continue;
        }
        let io = |source| GenerateError::Io {
            path: full.clone(),
            source,
        };
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&full, text).map_err(io)?;
        changed.push(path);
    }
    for dir in leftover_functions(root)? {
        // Only a crate this command wrote is removed; anything else is someone's work.
        let main = read(&dir.join("src/main.rs"))?.unwrap_or_default();
        if !main.contains("Generated by `license-server generate`") {
            return Err(GenerateError::Foreign { path: dir });
        }
        std::fs::remove_dir_all(&dir).map_err(|source| GenerateError::Io {
            path: dir.clone(),
            source,
        })?;
        changed.push(dir);
    }
    Ok(changed)
}

/// The endpoint table as text: one line per endpoint, or with `functions`, one line per Lambda
/// function: its binary and its logical id in template.yaml (what the deployment scripts iterate).
pub fn listing(functions_only: bool) -> String {
    let mut out = String::new();
    if functions_only {
        for f in functions() {
            let _ = writeln!(out, "{} {}", f.name, f.logical_id());
        }
        return out;
    }
    for d in &TABLE {
        let access = d.access.map_or("none".to_owned(), |a| format!("{a:?}").to_lowercase());
        let methods = method_names(d);
        let _ = writeln!(
            out,
            "{:<26} {:<9} {:<34} access={:<5} input={:<7} function={}",
            d.name,
            methods.join(","),
            d.path,
            access,
            format!("{:?}", d.input).to_lowercase(),
            d.function.descriptor().name
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_section() {
        let file = "a\n  # BEGIN GENERATED old\n  old\n  # END GENERATED\nb\n";
        let got = splice(Path::new("f"), file, "  # BEGIN GENERATED\n  new\n  # END GENERATED\n").unwrap();
        assert_eq!(got, "a\n  # BEGIN GENERATED\n  new\n  # END GENERATED\nb\n");
        assert!(matches!(
            splice(Path::new("f"), "a\n", "x"),
            Err(GenerateError::NoSection { .. })
        ));
    }

    #[test]
    fn wrap_keeps_lines_within_110_columns() {
        let text = "word ".repeat(60);
        for line in wrap("#", &text, 12).lines() {
            assert!(line.len() <= 110, "{line}");
            assert!(line.starts_with("            # word"), "{line}");
        }
    }

    #[test]
    fn every_function_is_named_and_the_default_route_is_last() {
        let all = functions();
        assert_eq!(all.last().map(|f| f.name), Some(DEFAULT_ROUTE));
        assert_eq!(all[0].logical_id(), "ActivateLicenseFunction");
        let check = all.iter().find(|f| f.name == "check_license").unwrap();
        assert_eq!(routes(check), "GET /api/v4/check_license and GET /");
        assert_eq!(check.serves[0].endpoint, license_api::handlers::Endpoint::CheckLicense);
    }
}
