//! Examples live as `[[example]]` targets; run `cargo run -p kernelci-examples --example node_filter`.
