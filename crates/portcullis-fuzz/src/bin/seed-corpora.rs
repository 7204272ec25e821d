//! Writes the seed corpora for the fuzz targets: `seed-corpora DIR` makes `DIR/TARGET/`
//! with one file per seed (for `cargo +nightly fuzz run TARGET DIR/TARGET`).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    for target in portcullis_fuzz::TARGETS {
        let d = dir.join(target.name);
        std::fs::create_dir_all(&d)?;
        for (i, seed) in portcullis_fuzz::seeds::seeds(target.name)
            .iter()
            .enumerate()
        {
            std::fs::write(d.join(format!("seed-{i:02}")), seed)?;
        }
    }
    println!("seeds written under {}", dir.display());
    Ok(())
}
