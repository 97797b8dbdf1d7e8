//! Model endpoint probes and metrics (KServe V2, vLLM, Triton, plain HTTP).
