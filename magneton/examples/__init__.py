"""Small, dependency-free example workloads that tests, benchmarks and device checks share."""
