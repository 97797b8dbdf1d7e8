//! Cost: spend lines, GPU-hours, idle cost, spot savings, forecasts.
