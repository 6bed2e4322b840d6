//! World files against arbitrary edits: the demo world with bytes deleted and text inserted
//! anywhere is compiled into a world or refused with a `WorldError`, never a panic.

use proptest::prelude::*;
use sim::world::file::WorldFile;

const DEMO: &str = include_str!("../src/world/demo.toml");

fn edited_world() -> impl Strategy<Value = String> {
    prop::collection::vec((0.0f64..1.0, 0usize..40, "[ -~\n]{0,16}"), 1..6).prop_map(|edits| {
        let mut text = DEMO.to_string();
        for (at, delete, insert) in edits {
            let mut i = ((text.len() as f64) * at) as usize;
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            let mut end = (i + delete).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.replace_range(i..end, &insert);
        }
        text
    })
}

#[test]
fn the_demo_world_compiles() {
    WorldFile::parse(DEMO).expect("parse").compile(chrono::Utc::now()).expect("compile");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn edited_world_files_compile_or_fail_cleanly(text in edited_world()) {
        match WorldFile::parse(&text).and_then(|w| w.compile(chrono::Utc::now())) {
            // A world that compiles is served as it is; what matters here is that nothing panics.
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
