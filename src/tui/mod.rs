//! The terminal views: the bars (or plain lines) `mmm run` draws, the full-screen viewer of
//! `mmm progress`, and its replay of a recorded job.

pub(crate) mod bars;
pub(crate) mod replay;
pub(crate) mod viewer;
