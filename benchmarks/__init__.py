"""Load generators and comparative benchmarks (run from the README; not timed tests)."""
