"""The history behind the dashboard's charts: minute snapshots, hour and six-hour rollups."""
