"""The test kit: a strict fake Bot API, a local feed server and the launcher of
``feedbot run``, shared by the tests and the benchmarks (neither imports the other)."""
