"""One run of SRVAE-Pyro, from its configuration to its outputs: the layer ``run.py`` calls.

``config`` holds the typed, versioned run configuration; ``cli`` parses the command line into it;
``train`` and ``evaluate`` are the modes; ``outputs`` writes and summarises what either produced.
"""
