"""Fakes for what lives outside the machine: providers' APIs, as real servers on loopback."""
