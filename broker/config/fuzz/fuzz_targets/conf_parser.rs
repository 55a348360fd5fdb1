//! Feeds arbitrary text to the config parser, with a few in-memory include files and
//! environment variables to reach, and checks that it never panics or hangs, that every
//! accepted config renders back to text that parses to the same tree, and that the options
//! layer copes with whatever tree comes out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natrix_config::conf::{self, MemoryLoader, render_map};
use natrix_config::options::{Options, Strictness};

fn loader() -> MemoryLoader {
    MemoryLoader::new()
        .with_file("/fuzz/inc.conf", "port: 4222\nVAR = [1, 2 ]\n")
        .with_file("/fuzz/self.conf", "include self.conf\n")
        .with_file("/fuzz/bad.conf", "a = {\n")
        .with_env("E", "{ a: 1, b: [x, y ] }")
        .with_env("LOOP", "$LOOP")
        .with_env("N", "42")
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let loader = loader();
    let Ok(doc) = conf::parse_with(src, "/fuzz/main.conf", &loader) else {
        return;
    };
    if let Ok(text) = render_map(&doc.root) {
        let again = conf::parse_with(&text, "/fuzz/rendered.conf", &loader)
            .unwrap_or_else(|e| panic!("rendered config does not parse: {e}\n{text}"));
        assert_eq!(again.root, doc.root, "round trip changed the tree:\n{text}");
        assert_eq!(again.digest(), doc.digest());
    }
    let _ = Options::from_document(&doc, "/fuzz/main.conf", Strictness::Lenient);
});
