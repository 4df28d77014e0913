"""The virtual lab: real daemons on one machine, for the demo, the tests and the benchmarks."""
