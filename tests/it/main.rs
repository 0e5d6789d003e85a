//! One integration-test binary (faster to build than many).
mod api_http;
mod api_oauth;
mod api_routes;
mod api_snapshots;
mod api_support;
mod bad_input;
mod crash;
mod engine_prop;
mod fast_path;
mod fuzz_regressions;
mod hostile;
mod isolation;
mod policy_api;
mod policy_assertions;
mod policy_diff;
mod policy_validate;
mod worked_example;
