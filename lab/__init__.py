"""The lab's own tooling: the lab clock, the loopback launcher, stack helpers."""
