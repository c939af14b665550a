//! Small programs a lab copies, as `[[example]]` targets: `cargo run -p kernelci-examples
//! --example <name>` with `node_filter`, `submit_results`, `logspec_parse`, `lava_job`,
//! `embed_api` or `custom_runtime`. `README.md` describes each; `tests/` runs each one's
//! code against real services.
