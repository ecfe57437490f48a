//! Tests of the consensus core, grouped by paper section. They drive nodes
//! only through the public API (tick/step/propose/read_index/ready/advance/
//! status) and assert on `Ready` contents and `Status`.

mod election;
mod faults;
mod hostile;
mod lease;
mod membership;
mod network;
mod prevote;
mod read_index;
mod replication;
mod safety;
mod snapshot;
mod transfer;
