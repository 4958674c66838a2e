//! Replays the committed corpus and every regression input through the
//! fuzz targets' checks: a bug a fuzz run once found stays fixed, whether
//! or not a fuzzer runs.

use std::fs;
use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 6] = [
    ("record", kgw_fuzz::record),
    ("part_table", kgw_fuzz::part_table),
    ("range", kgw_fuzz::range),
    ("sse_headers", kgw_fuzz::sse_headers),
    ("kms_config", kgw_fuzz::kms_config),
    ("bucket_policy", kgw_fuzz::bucket_policy),
];

#[test]
fn corpus_and_regressions_pass_every_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, check) in TARGETS {
        let mut seen = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = fs::read_dir(root.join(dir).join(name)) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = fs::read(&path).unwrap();
                if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
                    panic!("{name}: {} fails: {e:?}", path.display());
                }
                seen += 1;
            }
        }
        assert!(seen > 0, "{name} has no committed inputs");
    }
}
