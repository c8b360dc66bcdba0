"""Jobs: a generator and a run put together as one command a scheduler starts (`replayer
hourly`: one hour of the serverless mix, configured by the environment, for a Cloud Run Job or
a Kubernetes CronJob)."""
