#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| opsmgr_fuzz::keystore_records(data));
