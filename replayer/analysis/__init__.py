"""Records and what is made of them: the record schema and the drain from worker rings, the
one reading of a run's records, the summary, the report, exports, plots and Zipkin spans."""
