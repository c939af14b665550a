//! Parse a node query the way the Maestro API does and test it against a node.
//!
//! `cargo run -p kernelci-examples --example node_filter -- 'kind=kbuild' 'data.arch__in=arm64,x86_64'`

use kernelci_model::{NodeFilter, NodeInput, time};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pairs: Vec<(&str, &str)> = args
        .iter()
        .map(|a| a.split_once('=').unwrap_or((a, "")))
        .collect();
    let filter = match NodeFilter::parse(pairs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("bad filter: {e}");
            std::process::exit(2);
        }
    };
    let body = serde_json::json!({"kind": "kbuild", "name": "kbuild-gcc-12-x86", "path": ["checkout", "kbuild-gcc-12-x86"],
                                  "data": {"arch": "x86_64", "compiler": "gcc-12"}});
    let now = time::now();
    let node = match NodeInput::from_json(&body, now)
        .map_err(|e| e.to_string())
        .and_then(|i| i.into_new_node("lab", now).map_err(|e| e.to_string()))
    {
        Ok(n) => n,
        Err(e) => {
            eprintln!("bad node: {e}");
            std::process::exit(2);
        }
    };
    println!("{filter:#?}");
    println!("matches the sample kbuild node: {}", filter.matches(&node));
}
