"""Gate liveness: last wills and heartbeats turned into device-offline alerts and recoveries."""
