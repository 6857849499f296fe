"""Load for the lab: the baseline Locust user and the scenarios that trip each alert."""
