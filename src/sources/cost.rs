//! Cost sources: the OpenCost allocation API and FOCUS CSV exports.
