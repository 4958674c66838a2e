#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kgw_fuzz::bucket_policy(data));
