"""The lab's alert sink: where every Alertmanager receiver delivers its webhooks.

It keeps the last notifications in memory and shows them as JSON and as an HTML page
grouped by receiver, so a person can see which receiver got which alert, firing or
resolved, without Slack or PagerDuty credentials.
"""
