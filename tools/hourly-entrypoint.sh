#!/bin/sh
# Entrypoint of the hourly job image (Dockerfile): one hour of the serverless mix, configured by
# the environment as the Cloud Run hourly load generator is (EXPERIMENT_ID, SCENARIO, ...; see
# docs/hourly.md), one JSON line per invocation on stdout, the run's summary on stderr.
# Arguments go to `replayer hourly` (for example --dry-run).
set -eu

# exec: replayer itself gets the scheduler's SIGTERM (a Cloud Run task timeout, a CronJob's
# activeDeadlineSeconds), stops sending, records what was not sent and still writes every line.
exec "${REPLAYER_PYTHON:-python}" -m replayer hourly "$@"
