//! Reads a pasted error from standard input and prints `diagnose::explain` as JSON.
//!
//! `cargo run -p diagnose --example explain < error.txt`

use std::io::Read;

fn main() {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("cannot read standard input: {e}");
        std::process::exit(2);
    }
    let explanation = diagnose::explain(&text);
    match serde_json::to_string_pretty(&explanation) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("cannot serialise the explanation: {e}");
            std::process::exit(1);
        }
    }
}
