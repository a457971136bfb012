//! For the husk-and-runc tests of refusals: the part of an error both runtimes share.
//! (Kept apart from runtime_support, which other helpers edit at the same time.)

use husk_e2e::{output_text, Runtime};

use crate::runtime_support::{assert_one_line_error, stderr_of};

/// The command failed on `rt` and its stderr mentions `word` (case-insensitive); on husk the
/// error is one `husk: ` line (runc's wording and logrus framing are no contract).
pub fn assert_refused(rt: &Runtime, out: &std::process::Output, word: &str) {
    let name = rt.name();
    assert!(
        !out.status.success(),
        "{name}: expected a failure: {}",
        output_text(out)
    );
    let stderr = stderr_of(out).to_lowercase();
    assert!(
        stderr.contains(&word.to_lowercase()),
        "{name}: {word:?} not in {stderr}"
    );
    if name == "husk" {
        assert_one_line_error(out, word);
    }
}
