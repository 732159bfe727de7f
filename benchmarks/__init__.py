"""Load generators and comparative benchmarks (run from docs/development.md; not timed tests)."""
