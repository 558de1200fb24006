//! What the host tells its operator: logs in the formats ArmoniK's stack reads, and Prometheus
//! metrics. Every layer records into it; it depends on none of them.

pub mod clef;
pub mod logs;
pub mod metrics;
