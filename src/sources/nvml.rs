//! NVML on the local host, read on a blocking thread; degrades to one status line without a driver.
