pub mod canonical;
pub mod correlation;
pub mod ids;
pub mod sanitize;
pub mod time;
pub mod yaml;
