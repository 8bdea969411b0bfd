"""A local studio on this PC, for the demo, the tests and the benchmark.

Everything here runs Relay and its neighbours from the outside, as a studio would:
child processes, the platform stand-in, the broker, synthetic encoders, and Relay's
JSON log read as it grows. Nothing in the media plane imports it.

- :mod:`studio.procs`: tools, free ports, child processes and the stop signals.
- :mod:`studio.platform`: nginx-rtmp as the platform (one configuration for all).
- :mod:`studio.broker`: Mosquitto, and whether a broker answers.
- :mod:`studio.encoders`: synthetic encoders and listeners (ffmpeg, or PyAV).
- :mod:`studio.logfollow`: Relay's JSON log, followed incrementally.
- :mod:`studio.relayrun`: `relay run` as a child process, its log followed.
- :mod:`studio.configs`: a relay.toml for a studio on 127.0.0.1.
- :mod:`studio.local`: the demo's whole studio (platform, broker, Relay, encoders).
"""
