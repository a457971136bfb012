//! One check for a command that must fail on husk and on runc, the control: runc's wording
//! (logrus lines) is not a contract, only its failure is; husk's one clear line is checked too.
//! Candidate for runtime_support/ once no other helper is editing it.

use std::process::Output;

use husk_e2e::{output_text, Runtime};

/// The command failed. On husk also with one `husk: ...` line naming each of `wants`.
pub fn assert_failed(rt: &Runtime, out: &Output, wants: &[&str]) {
    assert!(
        !out.status.success(),
        "{}: expected a failure: {}",
        rt.name(),
        output_text(out)
    );
    if rt.name() == "husk" {
        for want in wants {
            crate::runtime_support::assert_one_line_error(out, want);
        }
    }
}
