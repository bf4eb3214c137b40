//! Embeds `migrations/{sqlite,postgres}/*.sql` into the crate: writes
//! `$OUT_DIR/migrations.rs`, a list of `(version, description, include_str!(…))`
//! per dialect, which `db::migrator` turns into sqlx `Migration`s.
//!
//! This is what `sqlx::migrate!` does, without sqlx's proc-macro crate (whose
//! host build of sqlx and SQLite costs more than the rest of this script; see
//! `db/row.rs`). Versions and descriptions are read from file names exactly as
//! sqlx reads them (`<version>_<description>.sql`, `_` → space), so checksums
//! and the `_sqlx_migrations` table stay what `migrate!` produced — a unit test
//! compares the two.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

fn dialect(dir: &Path) -> Result<String, Box<dyn Error>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if !path.is_file() || !name.ends_with(".sql") {
            continue;
        }
        let Some((version, rest)) = name.split_once('_') else { continue };
        if rest.ends_with(".up.sql") || rest.ends_with(".down.sql") {
            return Err(format!("{name}: reversible migrations are not supported here").into());
        }
        let version: i64 = version.parse().map_err(|_| format!("{name}: no integer version prefix"))?;
        let description = rest.trim_end_matches(".sql").replace('_', " ");
        files.push((version, description, path.canonicalize()?));
    }
    files.sort_by_key(|f| f.0);
    let mut out = String::from("&[\n");
    for (version, description, path) in files {
        writeln!(out, "    ({version}, {description:?}, include_str!({:?})),", path.display().to_string())?;
    }
    out.push(']');
    Ok(out)
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=migrations");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let code = format!(
        "/// Migrations of each dialect: (version, description, SQL), by version.\n\
         pub(crate) const SQLITE: &[(i64, &str, &str)] = {};\n\
         pub(crate) const POSTGRES: &[(i64, &str, &str)] = {};\n",
        dialect(&root.join("sqlite"))?,
        dialect(&root.join("postgres"))?,
    );
    let out = Path::new(&std::env::var("OUT_DIR")?).join("migrations.rs");
    std::fs::write(out, code)?;
    Ok(())
}
