//! ElfCore::parse on arbitrary bytes, then every note and every PT_LOAD.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmsift::input::elf::ElfCore;

fuzz_target!(|data: &[u8]| {
    let Ok(core) = ElfCore::parse(data) else {
        return;
    };
    assert!(!core.loads.is_empty());
    for l in &core.loads {
        assert!(l.file_phys_end() <= l.phys_end());
        assert!(l.file_offset + l.file_size <= data.len() as u64);
    }
    let mut notes = core.notes();
    let mut steps = 0;
    while let Ok(Some(n)) = notes.next() {
        // The descriptor is where the note says it is (the kdump sub-header relies on it).
        let at = n.desc_offset;
        assert_eq!(&core.notes[at..at + n.desc.len()], n.desc);
        std::hint::black_box((n.name, n.n_type));
        steps += 1;
        // Every note takes at least its 12-byte header: the walk ends.
        assert!(steps <= core.notes.len() / 12);
    }
    // After the end or an error, there is nothing more.
    assert!(matches!(notes.next(), Ok(None)));
});
