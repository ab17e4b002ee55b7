//! AdmissionReview bodies, as any client of the webhook may post them.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gitops_reverser_core::fuzz::admission(data));
