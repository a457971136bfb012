//! Fake cgroupfs tests.
