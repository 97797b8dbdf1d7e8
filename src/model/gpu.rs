//! GPU data: devices, their metrics and who holds them.
