//! The pieces of `pollstream-stress`, shared with the chaos run (`pollstream-chaos`): the
//! open- and closed-loop vote load with its tally ([`load`]), Socket.IO screens ([`screens`]),
//! the polls a run votes in ([`setup`]), the set-up step both tools run before the first vote
//! ([`prepare`]), the exactly-once check ([`check`]) and the figures of the summary
//! ([`report`]).

pub mod check;
pub mod cli;
pub mod load;
pub mod prepare;
pub mod report;
pub mod screens;
pub mod setup;
