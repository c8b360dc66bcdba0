"""Records and what is made of them. model: what a record means (the one decoder into numpy
columns, the derived lag and latencies, the counts, run.json); records: the file format, the
drain from worker rings, reading streams; summary: the one summary document, which the run
writes and report extends; export, plots, html, hdr, zipkin: what else is made from records;
progress: the live status; stats and fmt: exact statistics and numbers for people."""
