//! Lines of a watch stream, as the API server (or anything in its place) may send them.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gitops_reverser_core::fuzz::watch_line(data));
