//! One integration-test binary (faster to build than many).
mod bad_input;
mod engine_prop;
mod worked_example;
