"""Encoding, exact top-k search in bounded memory, MaxSim, hard-negative mining, devices."""
